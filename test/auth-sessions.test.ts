import t from 'tap'
import { eq } from 'drizzle-orm'
import { auditEvents, sessions } from '../src/db/schema.js'
import { buildTestApp, cookiesFrom, setCookieLines, signIn, STRONG_PASSWORD, type Cookies } from './helpers/app.js'

const app = await buildTestApp(t)
const me = (cookies: Cookies) => app.inject({ url: '/api/auth/me', cookies })
const post = (url: string, cookies: Cookies, payload?: object) =>
  app.inject({ method: 'POST', url, cookies, ...(payload === undefined ? {} : { payload }) })
const secondSignIn = async (username: string, password = STRONG_PASSWORD) =>
  cookiesFrom(await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password } }))

t.test('logout clears both cookies with the same attributes and kills the session on the very next request', async (t) => {
  const alice = await signIn(app)
  const response = await post('/api/auth/logout', alice.cookies)
  t.equal(response.statusCode, 204)
  t.equal(response.body, '')
  const lines = setCookieLines(response)
  t.ok(lines.includes('__Host-access_token=; Max-Age=0; Path=/; HttpOnly; Secure; Partitioned; SameSite=None'))
  t.ok(lines.includes('__Secure-refresh_token=; Max-Age=0; Path=/api/auth; HttpOnly; Secure; Partitioned; SameSite=None'))
  const after = await me(alice.cookies)
  t.equal(after.statusCode, 401, 'a copy of the old cookie is refused')
  t.equal(after.json().code, 'SESSION_REVOKED')
  t.equal((await post('/api/auth/logout', {})).statusCode, 401, 'logout when not signed in')
})

t.test('logout-all ends every session of the user, and only theirs', async (t) => {
  const alice = await signIn(app)
  const laptop = await secondSignIn(alice.username)
  const bob = await signIn(app)
  t.equal((await post('/api/auth/logout-all', alice.cookies)).statusCode, 204)
  t.equal((await me(alice.cookies)).statusCode, 401)
  t.equal((await me(laptop)).statusCode, 401)
  t.equal((await me(bob.cookies)).statusCode, 200, "another user's session is untouched")
  t.equal((await post('/api/auth/logout-all', {})).statusCode, 401)
  const [event] = await app.db.select().from(auditEvents).where(eq(auditEvents.type, 'logout_all'))
  t.match(event, { userId: alice.id, detail: { revoked: 2 } })
})

t.test('sessions lists the active sessions with the current one marked; one can be revoked', async (t) => {
  const alice = await signIn(app)
  const phone = await secondSignIn(alice.username)
  const list = await app.inject({ url: '/api/auth/sessions', cookies: alice.cookies, headers: { 'user-agent': 'x' } })
  t.equal(list.statusCode, 200)
  const items = list.json().items as Array<{ id: string, current: boolean, createdAt: string, lastUsedAt: string, userAgent: string | null, ip: string | null, method: string }>
  t.equal(items.length, 2)
  t.equal(items.filter((s) => s.current).length, 1)
  t.same(Object.keys(items[0]!).sort(), ['createdAt', 'current', 'id', 'ip', 'lastUsedAt', 'method', 'userAgent'])
  t.equal(items[0]!.method, 'password', 'a password sign-in says so')
  const other = items.find((s) => !s.current)!
  const revoke = await app.inject({ method: 'DELETE', url: `/api/auth/sessions/${other.id}`, cookies: alice.cookies })
  t.equal(revoke.statusCode, 204)
  t.equal((await me(phone)).statusCode, 401, 'the revoked session is refused on its next request')
  t.equal((await me(alice.cookies)).statusCode, 200, 'the current one goes on')
  const again = await app.inject({ method: 'DELETE', url: `/api/auth/sessions/${other.id}`, cookies: alice.cookies })
  t.equal(again.statusCode, 404, 'an already revoked session is not an active one')
  t.equal(again.json().code, 'SESSION_NOT_FOUND')
  t.equal((await app.inject({ url: '/api/auth/sessions', cookies: alice.cookies })).json().items.length, 1, 'only active sessions are listed')
})

t.test("another user's session cannot be revoked (404), and a bad id is 400", async (t) => {
  const alice = await signIn(app)
  const bob = await signIn(app)
  const bobsSession = (await app.inject({ url: '/api/auth/sessions', cookies: bob.cookies })).json().items[0].id
  const response = await app.inject({ method: 'DELETE', url: `/api/auth/sessions/${bobsSession}`, cookies: alice.cookies })
  t.equal(response.statusCode, 404)
  t.equal((await me(bob.cookies)).statusCode, 200, "bob's session lives")
  t.equal((await app.inject({ method: 'DELETE', url: '/api/auth/sessions/not-a-uuid', cookies: alice.cookies })).statusCode, 400)
  t.equal((await app.inject({ method: 'DELETE', url: `/api/auth/sessions/${bobsSession}` })).statusCode, 401)
  t.equal((await app.inject({ url: '/api/auth/sessions' })).statusCode, 401)
})

t.test('changing the password revokes every other session at once and keeps this one', async (t) => {
  const alice = await signIn(app)
  const other = await secondSignIn(alice.username)
  const newPassword = 'a-brand-new-Passphrase-7'
  const change = await post('/api/auth/password', alice.cookies, { currentPassword: STRONG_PASSWORD, newPassword })
  t.equal(change.statusCode, 204)
  t.equal((await me(other)).statusCode, 401, 'the other session is gone on its next request')
  t.equal((await me(alice.cookies)).statusCode, 200, 'this one goes on')
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: STRONG_PASSWORD } })).statusCode, 401, 'the old password is dead')
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: newPassword } })).statusCode, 200)
  const [event] = await app.db.select().from(auditEvents).where(eq(auditEvents.type, 'password_changed'))
  t.match(event, { userId: alice.id, actorId: alice.id })
  t.notOk(JSON.stringify(event).includes(newPassword))
})

t.test('a password change is refused for a wrong current password (401), a weak or bad new one (400)', async (t) => {
  const alice = await signIn(app)
  const other = await secondSignIn(alice.username)
  const attempt = (payload: object) => post('/api/auth/password', alice.cookies, payload)
  const wrong = await attempt({ currentPassword: 'not-my-password', newPassword: 'a-brand-new-Passphrase-8' })
  t.equal(wrong.statusCode, 401)
  t.equal(wrong.json().code, 'BAD_CREDENTIALS')
  t.equal((await attempt({ currentPassword: STRONG_PASSWORD, newPassword: 'password1' })).statusCode, 400, 'common')
  t.equal((await attempt({ currentPassword: STRONG_PASSWORD, newPassword: 'short' })).statusCode, 400, 'too short')
  t.equal((await attempt({ currentPassword: STRONG_PASSWORD, newPassword: STRONG_PASSWORD })).statusCode, 400, 'unchanged')
  t.equal((await attempt({ currentPassword: STRONG_PASSWORD })).statusCode, 400, 'missing')
  t.equal((await attempt({ currentPassword: STRONG_PASSWORD, newPassword: 'a-brand-new-Passphrase-8', role: 'admin' })).statusCode, 400, 'unknown field')
  t.equal((await post('/api/auth/password', {}, { currentPassword: STRONG_PASSWORD, newPassword: 'a-brand-new-Passphrase-8' })).statusCode, 401, 'anonymous')
  t.equal((await me(other)).statusCode, 200, 'refused changes revoke nothing')
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: STRONG_PASSWORD } })).statusCode, 200, 'and keep the password')
})

t.test('revoked sessions are marked in the database, not deleted', async (t) => {
  const alice = await signIn(app)
  await post('/api/auth/logout', alice.cookies)
  const rows = await app.db.select().from(sessions).where(eq(sessions.userId, alice.id))
  t.equal(rows.length, 1)
  t.type(rows[0]!.revokedAt, Date)
})
