import t from 'tap'
import { eq } from 'drizzle-orm'
import { auditEvents } from '../src/db/schema.js'
import { buildTestApp, cookiesFrom, LogCapture, signIn, STRONG_PASSWORD } from './helpers/app.js'

const logs = new LogCapture()
const app = await buildTestApp(t, {}, { logs })

t.test('every audited action appears with the right actor and subject, and no secret anywhere', async (t) => {
  const admin = await signIn(app, { role: 'admin' })
  const alice = await signIn(app)
  const bob = await signIn(app)
  const loginAgain = async () => cookiesFrom(await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: STRONG_PASSWORD } }))

  await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: 'wrong-password-1' } })
  await app.inject({ url: '/api/users', cookies: alice.cookies })
  const second = await loginAgain()
  const secondSession = (await app.inject({ url: '/api/auth/sessions', cookies: second })).json().items.find((s: { current: boolean }) => s.current).id
  await app.inject({ method: 'DELETE', url: `/api/auth/sessions/${secondSession}`, cookies: alice.cookies })
  await app.inject({ method: 'POST', url: '/api/auth/password', cookies: alice.cookies, payload: { currentPassword: STRONG_PASSWORD, newPassword: 'Second-Passphrase-55' } })
  await app.inject({ method: 'POST', url: '/api/auth/logout-all', cookies: alice.cookies })
  await app.inject({ method: 'PATCH', url: `/api/users/${bob.id}`, cookies: admin.cookies, payload: { role: 'admin' } })
  await app.inject({ method: 'POST', url: '/api/auth/logout', cookies: bob.cookies })
  await app.inject({ method: 'DELETE', url: `/api/users/${bob.id}`, cookies: admin.cookies })

  const events = await app.db.select().from(auditEvents)
  const find = (type: string, userId: string) => events.find((e) => e.type === type && e.userId === userId)
  t.match(find('register', alice.id), { actorId: alice.id, ip: '127.0.0.1' })
  t.match(find('login', alice.id), { actorId: alice.id })
  t.match(find('login_failed', alice.id), { actorId: null, detail: { username: alice.username } })
  t.match(find('access_denied', alice.id), { actorId: alice.id, detail: { method: 'GET', route: '/api/users' } })
  t.match(find('session_revoked', alice.id), { actorId: alice.id, detail: { sessionId: secondSession } })
  t.match(find('password_changed', alice.id), { actorId: alice.id })
  t.match(find('logout_all', alice.id), { actorId: alice.id })
  t.match(find('role_changed', bob.id), { actorId: admin.id, detail: { role: 'admin' } })
  t.match(find('logout', bob.id), { actorId: bob.id })
  t.match(find('user_deleted', bob.id), { actorId: admin.id, detail: { username: bob.username } })

  const secrets = [STRONG_PASSWORD, 'wrong-password-1', 'Second-Passphrase-55', ...Object.values(alice.cookies), ...Object.values(admin.cookies), ...Object.values(second)]
  const stored = JSON.stringify(events)
  const logged = logs.text
  t.ok(logged.includes('audit login'), 'audit events are mirrored in the application log')
  for (const secret of secrets) {
    t.notOk(stored.includes(secret), 'no secret in the audit table')
    t.notOk(logged.includes(secret), 'no secret in the application log')
  }
})

t.test('passwords, cookies and Authorization headers are redacted even when code logs them by mistake', async (t) => {
  const alice = await signIn(app)
  const token = alice.cookies['__Host-access_token']!
  const before = logs.lines.length
  app.log.info({ req: { headers: { cookie: `__Host-access_token=${token}`, authorization: `Bearer ${token}` } } }, 'probe')
  app.log.info({ body: { password: 'leaky-Password-1', newPassword: 'leaky-Password-2' } }, 'probe')
  const probes = logs.lines.slice(before).join('')
  t.notOk(probes.includes(token))
  t.notOk(probes.includes('leaky-Password'))
  t.ok(probes.includes('[redacted]'))
})

t.test('admins read the log newest first, filtered by user and type, a keyset page at a time', async (t) => {
  const admin = await signIn(app, { role: 'admin' })
  const carol = await signIn(app)
  for (let i = 0; i < 4; i++) await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: carol.username, password: 'wrong-password-2' } })
  const read = (query: string) => app.inject({ url: `/api/audit?${query}`, cookies: admin.cookies })
  const filtered = (await read(`userId=${carol.id}&type=login_failed&limit=3`)).json()
  t.equal(filtered.items.length, 3)
  t.ok(filtered.items.every((e: { type: string, userId: string }) => e.type === 'login_failed' && e.userId === carol.id))
  t.type(filtered.nextCursor, 'string')
  const rest = (await read(`userId=${carol.id}&type=login_failed&limit=3&cursor=${filtered.nextCursor}`)).json()
  t.equal(rest.items.length, 1)
  t.equal(rest.nextCursor, null)
  const all = (await read(`userId=${carol.id}&limit=100`)).json().items
  t.same(all.map((e: { type: string }) => e.type), ['login_failed', 'login_failed', 'login_failed', 'login_failed', 'login', 'register'], 'newest first')
  t.same(Object.keys(all[0]).sort(), ['actorId', 'at', 'detail', 'id', 'ip', 'type', 'userId'])
  for (const query of ['type=nope', 'userId=abc', 'limit=0', 'cursor=%%%', 'x=1']) t.equal((await read(query)).statusCode, 400, query)
  const rows = await app.db.select().from(auditEvents).where(eq(auditEvents.userId, carol.id))
  t.equal(rows.length, 6)
})
