import t from 'tap'
import { eq } from 'drizzle-orm'
import { auditEvents, users } from '../src/db/schema.js'
import { buildTestApp, STRONG_PASSWORD } from './helpers/app.js'

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

t.test('an unknown route is a 404 in the error shape', async (t) => {
  const app = await buildTestApp(t)
  const response = await app.inject({ url: '/api/nothing-here' })
  t.equal(response.statusCode, 404)
  t.match(response.json(), { statusCode: 404, error: 'Not Found', message: String, code: 'ROUTE_NOT_FOUND' })
})
