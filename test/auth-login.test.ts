import t from 'tap'
import { and, eq } from 'drizzle-orm'
import { auditEvents, sessions } from '../src/db/schema.js'
import { buildTestApp, cookiesFrom, signIn, STRONG_PASSWORD } from './helpers/app.js'
import { decodePayload } from './helpers/jwt.js'

const app = await buildTestApp(t)
const login = (payload: object, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/api/auth/login', payload, headers })

t.test('signing in sets both cookies with the contract attributes and answers {user}', async (t) => {
  const { username, id } = await signIn(app)
  const response = await login({ username, password: STRONG_PASSWORD }, { 'user-agent': 'tap-test' })
  t.equal(response.statusCode, 200)
  t.same(response.json().user, { id, username, role: 'user', createdAt: response.json().user.createdAt, mfa: false, email: null, emailVerified: false })
  const header = response.headers['set-cookie'] as string[]
  const access = header.find((line) => line.startsWith('__Host-access_token='))!
  const refresh = header.find((line) => line.startsWith('__Secure-refresh_token='))!
  t.match(access, /; Max-Age=900; Path=\/; HttpOnly; Secure; Partitioned; SameSite=None$/)
  t.match(refresh, /; Max-Age=1209600; Path=\/api\/auth; HttpOnly; Secure; Partitioned; SameSite=None$/)
  const refreshValue = refresh.split(';')[0]!.split('=')[1]!
  t.equal(Buffer.from(refreshValue, 'base64url').length, 32, 'the refresh token is 32 random bytes')

  const claims = decodePayload(access.split(';')[0]!.split('=')[1]!)
  t.match(claims, { sub: id, role: 'user', typ: 'access', iss: String, aud: String, jti: String, iat: Number, exp: Number })
  t.equal((claims.exp as number) - (claims.iat as number), 900, 'expires after ACCESS_TOKEN_TTL')
  const [session] = await app.db.select().from(sessions).where(eq(sessions.id, claims.sid as string))
  t.match(session, { userId: id, userAgent: 'tap-test', revokedAt: null })

  const me = await app.inject({ url: '/api/auth/me', cookies: cookiesFrom(response) })
  t.equal(me.statusCode, 200)
  t.equal(me.json().user.id, id)
})

t.test('an unknown user and a wrong password get the same 401 BAD_CREDENTIALS, and both are audited', async (t) => {
  const { username, id } = await signIn(app)
  const wrong = await login({ username, password: 'not-the-password-1' })
  const unknown = await login({ username: 'nobody_here', password: 'not-the-password-1' })
  t.equal(wrong.statusCode, 401)
  t.equal(unknown.statusCode, 401)
  t.equal(wrong.body, unknown.body, 'identical answers')
  t.equal(wrong.json().code, 'BAD_CREDENTIALS')
  t.notOk(wrong.headers['set-cookie'], 'no cookie on failure')
  const failures = await app.db.select().from(auditEvents).where(eq(auditEvents.type, 'login_failed'))
  t.ok(failures.some((event) => event.userId === id), 'wrong password recorded against the user')
  t.ok(failures.some((event) => event.userId === null && (event.detail as { username?: string }).username === 'nobody_here'))
  t.notOk(JSON.stringify(failures).includes('not-the-password-1'), 'the audit log never holds the attempted password')
})

t.test('usernames match regardless of case at sign-in', async (t) => {
  const { username } = await signIn(app)
  t.equal((await login({ username: username.toUpperCase(), password: STRONG_PASSWORD })).statusCode, 200)
})

t.test('bad login bodies are 400', async (t) => {
  for (const payload of [{}, { username: 'abc' }, { username: 'abc', password: 'x' }, { username: 'abc', password: STRONG_PASSWORD, extra: 1 }]) {
    const response = await login(payload)
    t.equal(response.statusCode, 400, JSON.stringify(payload))
    t.equal(response.json().code, 'FST_ERR_VALIDATION')
  }
})

t.test('POST /token gives a Bearer token for non-browser clients and sets no cookie', async (t) => {
  const { username, id } = await signIn(app)
  const response = await app.inject({ method: 'POST', url: '/api/auth/token', payload: { username, password: STRONG_PASSWORD } })
  t.equal(response.statusCode, 200)
  const body = response.json()
  t.match(body, { access_token: String, token_type: 'Bearer', expires_in: 900 })
  t.notOk(response.headers['set-cookie'])
  const me = await app.inject({ url: '/api/auth/me', headers: { authorization: `Bearer ${body.access_token}` } })
  t.equal(me.statusCode, 200)
  t.equal(me.json().user.id, id)
  const bad = await app.inject({ method: 'POST', url: '/api/auth/token', payload: { username, password: 'wrong-password-9' } })
  t.equal(bad.statusCode, 401)
  t.equal(bad.json().code, 'BAD_CREDENTIALS')
  // The Bearer session is listed and revocable like any other.
  const list = await app.inject({ url: '/api/auth/sessions', headers: { authorization: `Bearer ${body.access_token}` } })
  t.equal(list.json().items.filter((s: { current: boolean }) => s.current).length, 1)
  const logout = await app.inject({ method: 'POST', url: '/api/auth/logout', headers: { authorization: `Bearer ${body.access_token}` } })
  t.equal(logout.statusCode, 204)
  const after = await app.inject({ url: '/api/auth/me', headers: { authorization: `Bearer ${body.access_token}` } })
  t.equal(after.statusCode, 401)
  t.equal(after.json().code, 'SESSION_REVOKED')
})

t.test('a login is audited with its session', async (t) => {
  const { id } = await signIn(app)
  const [event] = await app.db.select().from(auditEvents).where(and(eq(auditEvents.userId, id), eq(auditEvents.type, 'login')))
  t.match(event, { actorId: id, ip: '127.0.0.1', detail: { sessionId: String } })
})

t.test('an unknown user and a wrong password take a similar time (medians of 20, a generous factor)', async (t) => {
  // Both answers must cost one password hash: an unknown name answered without one would be an
  // order of magnitude faster and tell an attacker which names exist. Four accounts, five wrong
  // passwords each, stay under the per-account limit; every attempt comes from its own address.
  const accounts = await Promise.all(Array.from({ length: 4 }, () => signIn(app)))
  const timed = async (username: string, address: string) => {
    const started = performance.now()
    const response = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password: 'not-the-password-2' }, remoteAddress: address })
    t.equal(response.statusCode, 401)
    return performance.now() - started
  }
  const wrongPassword: number[] = []
  const unknownUser: number[] = []
  // Interleaved, so that a slow moment of a loaded machine falls on both series alike.
  for (let i = 0; i < 20; i++) {
    wrongPassword.push(await timed(accounts[i % 4]!.username, `192.0.2.${i + 1}`))
    unknownUser.push(await timed(`nobody_${i}_timing`, `192.0.2.${i + 101}`))
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
  const [wrong, unknown] = [median(wrongPassword), median(unknownUser)]
  const ratio = Math.max(wrong, unknown) / Math.min(wrong, unknown)
  t.ok(ratio < 3, `medians ${wrong.toFixed(1)} ms (wrong password) and ${unknown.toFixed(1)} ms (unknown user): within a factor of 3 (${ratio.toFixed(2)})`)
})
