import { defineConfig } from 'drizzle-kit'

// `npm run db:generate` writes SQL migrations from the schema; review them like code and never
// edit one once committed.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './drizzle',
})
