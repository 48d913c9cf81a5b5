import t from 'tap'
import { randomBytes } from 'node:crypto'
import postgres from 'postgres'
import { openDatabase } from '../src/db/client.js'
import { freshDatabaseUrl } from './helpers/app.js'

// What deploy/db/roles.sql sets up, reduced to its point: the runtime role gets every row privilege
// on every table the owner creates (default privileges), and the migrations then create the audit
// log. The migrator must leave that table append-only for it. (test/deploy-nginx.test.ts proves the
// same through roles.sql itself, behind Nginx.)
const databaseUrl = await freshDatabaseUrl(t)

t.test('after the migrations, the runtime role may read and append audit rows, never rewrite or remove them', { skip: databaseUrl === undefined ? 'needs Postgres (TEST_DATABASE_URL)' : false }, async (t) => {
  const owner = postgres(databaseUrl!, { max: 1, onnotice: () => {} })
  t.teardown(() => owner.end({ timeout: 5 }))
  const role = `audit_app_${randomBytes(4).toString('hex')}`
  const password = randomBytes(16).toString('hex')
  await owner.unsafe(`create role ${role} login password '${password}'`)
  t.teardown(async () => {
    const admin = postgres(process.env.TEST_DATABASE_URL!, { max: 1, onnotice: () => {} })
    await admin.unsafe(`drop owned by ${role} cascade`).catch(() => {})
    await admin.end({ timeout: 5 })
  })
  await owner.unsafe(`grant usage on schema public to ${role}`)
  await owner.unsafe(`alter default privileges in schema public grant select, insert, update, delete on tables to ${role}`)

  const database = await openDatabase({ databaseUrl, dataDir: 'memory://' })
  await database.migrate()
  await database.close()

  const appUrl = new URL(databaseUrl!)
  appUrl.username = role
  appUrl.password = password
  const app = postgres(appUrl.toString(), { max: 1, onnotice: () => {} })
  t.teardown(async () => {
    await app.end({ timeout: 5 })
    // The role must go before the test database is dropped by freshDatabaseUrl's teardown.
    await owner.unsafe(`reassign owned by ${role} to current_user`).catch(() => {})
    await owner.unsafe(`drop owned by ${role}`).catch(() => {})
  })
  await app`insert into audit_events (type, detail) values ('login_failed', '{}'::jsonb)`
  const [row] = await app<Array<{ n: number }>>`select count(*)::int as n from audit_events`
  t.equal(row?.n, 1, 'it appends and reads')
  await t.rejects(app`update audit_events set type = 'nothing_happened'`, { code: '42501' }, 'it cannot rewrite an event')
  await t.rejects(app`delete from audit_events`, { code: '42501' }, 'it cannot delete one')
  await t.rejects(app`truncate audit_events`, { code: '42501' }, 'it cannot truncate the log')
  await app`update users set role = 'user' where false`
  t.pass('other tables keep their row privileges')

  // A second migrate run (the next deployment) keeps it so.
  const again = await openDatabase({ databaseUrl, dataDir: 'memory://' })
  await again.migrate()
  await again.close()
  await t.rejects(app`delete from audit_events`, { code: '42501' }, 'still append-only after migrating again')
})
