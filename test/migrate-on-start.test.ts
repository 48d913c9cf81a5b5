import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import postgres from 'postgres'
import { buildApp } from '../src/app.js'
import { migrationsFolder } from '../src/db/client.js'
import { freshDatabaseUrl, STRONG_PASSWORD, testConfig, uniqueName } from './helpers/app.js'

// MIGRATE_ON_START (API.md): pending migrations are applied at start under an advisory lock, so
// instances starting together on one empty database apply each migration once and all serve.
// Only a Postgres server has several connections to race: the embedded database is one process's.
const serverUrl = process.env.TEST_DATABASE_URL
if (serverUrl === undefined || serverUrl === '') {
  t.plan(0, 'needs TEST_DATABASE_URL: only a Postgres server can be migrated by several instances at once')
} else {
  const journal = JSON.parse(readFileSync(join(migrationsFolder(), 'meta', '_journal.json'), 'utf8')) as { entries: unknown[] }

  t.test('three instances starting at once on an empty database: each migration applied once, all serve', async (t) => {
    const databaseUrl = (await freshDatabaseUrl(t))!
    const starts = Array.from({ length: 3 }, async () => {
      const app = await buildApp({ config: testConfig({ databaseUrl, migrateOnStart: true }), pressure: { maxEventLoopDelay: 0 } })
      t.teardown(() => app.close())
      await app.ready()
      return app
    })
    const [first, second, third] = await Promise.all(starts)
    const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} })
    t.teardown(() => sql.end())
    const applied = await sql<Array<{ hash: string }>>`select hash from drizzle.__drizzle_migrations`
    t.equal(applied.length, journal.entries.length, 'one row per migration')
    t.equal(new Set(applied.map((row) => row.hash)).size, applied.length, 'none applied twice')
    const username = uniqueName('migrated')
    t.equal((await first!.inject({ method: 'POST', url: '/api/auth/register', payload: { username, password: STRONG_PASSWORD } })).statusCode, 201)
    for (const app of [second!, third!]) {
      t.equal((await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password: STRONG_PASSWORD } })).statusCode, 200, 'every instance serves the same schema')
    }
  })

  t.test('MIGRATE_ON_START=false leaves an empty database alone', async (t) => {
    const databaseUrl = (await freshDatabaseUrl(t))!
    const app = await buildApp({ config: testConfig({ databaseUrl, migrateOnStart: false }), pressure: { maxEventLoopDelay: 0 } })
    t.teardown(() => app.close())
    await app.ready()
    const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} })
    t.teardown(() => sql.end())
    const [row] = await sql<Array<{ n: number }>>`select count(*)::int as n from information_schema.tables where table_schema in ('public', 'drizzle')`
    t.equal(row!.n, 0, 'no table was created')
  })
}
