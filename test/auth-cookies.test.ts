import t from 'tap'
import { buildTestApp, cookiesFrom, setCookieLines, signIn, STRONG_PASSWORD } from './helpers/app.js'

t.test('COOKIE_SECURE=false: unprefixed names, no Secure or Partitioned, SameSite=Lax', async (t) => {
  const app = await buildTestApp(t, {}, { env: { COOKIE_SECURE: 'false' } })
  const alice = await signIn(app)
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: STRONG_PASSWORD } })
  const lines = setCookieLines(login)
  t.match(lines[0], /^access_token=[^;]+; Max-Age=900; Path=\/; HttpOnly; SameSite=Lax$/)
  t.match(lines[1], /^refresh_token=[^;]+; Max-Age=1209600; Path=\/api\/auth; HttpOnly; SameSite=Lax$/)
  const cookies = cookiesFrom(login)
  t.equal((await app.inject({ url: '/api/auth/me', cookies })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/refresh', cookies })).statusCode, 200)
  const logout = await app.inject({ method: 'POST', url: '/api/auth/logout', cookies })
  t.same(setCookieLines(logout), [
    'access_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax',
    'refresh_token=; Max-Age=0; Path=/api/auth; HttpOnly; SameSite=Lax',
  ])
})

t.test('COOKIE_PARTITIONED=false drops Partitioned only; the TTLs set Max-Age', async (t) => {
  const app = await buildTestApp(t, {}, { env: { COOKIE_PARTITIONED: 'false', ACCESS_TOKEN_TTL: '60', REFRESH_TOKEN_TTL: '3600' } })
  const alice = await signIn(app)
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: STRONG_PASSWORD } })
  const lines = setCookieLines(login)
  t.match(lines[0], /^__Host-access_token=[^;]+; Max-Age=60; Path=\/; HttpOnly; Secure; SameSite=None$/)
  t.match(lines[1], /^__Secure-refresh_token=[^;]+; Max-Age=3600; Path=\/api\/auth; HttpOnly; Secure; SameSite=None$/)
})

t.test('a request carrying the refresh or the access cookie twice is refused, never served from the first', async (t) => {
  const app = await buildTestApp(t)
  const alice = await signIn(app)
  const mallory = await signIn(app)
  const REFRESH = '__Secure-refresh_token'
  const ACCESS = '__Host-access_token'
  // A sibling subdomain plants its own refresh cookie ahead of the victim's.
  const planted = await app.inject({
    method: 'POST',
    url: '/api/auth/refresh',
    headers: { cookie: `${REFRESH}=${mallory.cookies[REFRESH]}; ${REFRESH}=${alice.cookies[REFRESH]}` },
  })
  t.equal(planted.statusCode, 401)
  t.equal(planted.json().code, 'REFRESH_INVALID')
  t.notOk(planted.headers['set-cookie'], 'nothing set, nothing cleared')
  const doubled = await app.inject({
    url: '/api/auth/me',
    headers: { cookie: `${ACCESS}=${mallory.cookies[ACCESS]}; ${ACCESS}=${alice.cookies[ACCESS]}` },
  })
  t.equal(doubled.statusCode, 401)
  t.equal(doubled.json().code, 'TOKEN_INVALID')
  // Each alone still works: the refusal is about the duplicate, not the values.
  t.equal((await app.inject({ url: '/api/auth/me', headers: { cookie: `${ACCESS}=${alice.cookies[ACCESS]}` } })).json().user.id, alice.id)
  const single = await app.inject({ method: 'POST', url: '/api/auth/refresh', headers: { cookie: `${REFRESH}=${alice.cookies[REFRESH]}` } })
  t.equal(single.json().user.id, alice.id)
})

t.test('COOKIE_SAMESITE=strict (the one-site setup) sets SameSite=Strict on the auth cookies, clearing included', async (t) => {
  const app = await buildTestApp(t, {}, { env: { COOKIE_SAMESITE: 'strict' } })
  const alice = await signIn(app)
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: STRONG_PASSWORD } })
  const lines = setCookieLines(login)
  t.match(lines[0], /^__Host-access_token=[^;]+; Max-Age=900; Path=\/; HttpOnly; Secure; Partitioned; SameSite=Strict$/)
  t.match(lines[1], /^__Secure-refresh_token=[^;]+; Max-Age=1209600; Path=\/api\/auth; HttpOnly; Secure; Partitioned; SameSite=Strict$/)
  const logout = await app.inject({ method: 'POST', url: '/api/auth/logout', cookies: cookiesFrom(login) })
  t.ok(setCookieLines(logout).every((line) => line.endsWith('SameSite=Strict')), 'cleared with the same attributes')
})
