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
