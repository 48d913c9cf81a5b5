import t from 'tap'
import { eq } from 'drizzle-orm'
import { auditEvents, users } from '../src/db/schema.js'
import { buildApp } from '../src/app.js'
import { buildTestApp, openTestDatabase, STRONG_PASSWORD, testConfig } from './helpers/app.js'

t.test('health answers 200 while up; ready answers 200 when the database does', async (t) => {
  const app = await buildTestApp(t)
  const health = await app.inject({ url: '/api/health' })
  t.equal(health.statusCode, 200)
  t.same(health.json(), { status: 'ok' })
  const ready = await app.inject({ url: '/api/health/ready' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ok' })
  t.equal(health.headers['x-content-type-options'], 'nosniff', 'security headers on health too')
})

t.test('ADMIN_USERNAME/ADMIN_PASSWORD create that admin once; an existing name is left alone', async (t) => {
  const app = await buildTestApp(t, { adminUsername: 'root', adminPassword: STRONG_PASSWORD })
  const [root] = await app.db.select().from(users).where(eq(users.username, 'root'))
  t.equal(root!.role, 'admin')
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'root', password: STRONG_PASSWORD } })
  t.equal(login.statusCode, 200)
  t.equal(login.json().user.role, 'admin')
  const [event] = await app.db.select().from(auditEvents).where(eq(auditEvents.type, 'user_created'))
  t.match(event, { userId: root!.id, detail: { role: 'admin' } })
})

t.test('an existing name is left alone: not promoted, its password not replaced, nothing created', async (t) => {
  // Someone registered the name first (case differs); then the API starts with ADMIN_USERNAME naming it.
  const { database } = await openTestDatabase(t)
  const first = await buildApp({ config: testConfig(), database })
  const registered = await first.inject({ method: 'POST', url: '/api/auth/register', payload: { username: 'Root', password: STRONG_PASSWORD } })
  t.equal(registered.statusCode, 201)
  await first.close()
  const adminPassword = 'bootstrap-Admin-Secret-91'
  const second = await buildApp({ config: testConfig({ adminUsername: 'root', adminPassword }), database })
  t.teardown(() => second.close())
  await second.ready()
  const rows = await second.db.select().from(users)
  t.equal(rows.length, 1, 'no second user')
  t.match(rows[0], { username: 'Root', role: 'user' }, 'still a plain user')
  t.equal((await second.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'root', password: adminPassword } })).statusCode, 401, 'the bootstrap password does not open it')
  t.equal((await second.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'root', password: STRONG_PASSWORD } })).statusCode, 200, 'its own password still does')
  t.equal((await second.db.select().from(auditEvents).where(eq(auditEvents.type, 'user_created'))).length, 0, 'nothing was created')
})

t.test('an unknown route is a 404 in the error shape', async (t) => {
  const app = await buildTestApp(t)
  const response = await app.inject({ url: '/api/nothing-here' })
  t.equal(response.statusCode, 404)
  t.match(response.json(), { statusCode: 404, error: 'Not Found', message: String, code: 'ROUTE_NOT_FOUND' })
})
