import { ConfigError, loadDatabaseConfig } from '../config.js'
import { openDatabase } from '../db/client.js'

// `npm run db:migrate`: applies pending migrations to DATABASE_URL (or the embedded database) and
// exits. Production runs it as the schema owner, then starts the API with MIGRATE_ON_START=false.
try {
  const config = loadDatabaseConfig(process.env)
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1, prepare: config.databasePrepare })
  try {
    await database.migrate()
    console.log(`migrations applied (${database.kind} database)`)
  } finally {
    await database.close()
  }
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : `migration failed: ${(error as Error).message}`)
  process.exitCode = 1
}
