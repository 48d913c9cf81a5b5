import t from 'tap'
import { eq } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { auditEvents, sessions } from '../src/db/schema.js'
import { buildTestApp, cookiesFrom, setCookieLines, signIn, type Cookies } from './helpers/app.js'
import { decodePayload } from './helpers/jwt.js'

const REFRESH = '__Secure-refresh_token'
const ACCESS = '__Host-access_token'
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const refresh = (app: FastifyInstance, cookies: Cookies) => app.inject({ method: 'POST', url: '/api/auth/refresh', cookies })
const sessionOf = (cookies: Cookies) => decodePayload(cookies[ACCESS]!).sid as string

const app = await buildTestApp(t)

t.test('a refresh rotates both cookies and the old access token keeps working until it expires', async (t) => {
  const alice = await signIn(app)
  const response = await refresh(app, alice.cookies)
  t.equal(response.statusCode, 200)
  t.equal(response.json().user.id, alice.id)
  const next = cookiesFrom(response, alice.cookies)
  t.not(next[REFRESH], alice.cookies[REFRESH], 'a new refresh token')
  t.not(next[ACCESS], alice.cookies[ACCESS], 'a new access token')
  t.equal(sessionOf(next), sessionOf(alice.cookies), 'same session')
  const header = setCookieLines(response).join('\n')
  t.match(header, /__Secure-refresh_token=[^;]+; Max-Age=1209600; Path=\/api\/auth; HttpOnly; Secure; Partitioned; SameSite=None/)
  t.equal((await app.inject({ url: '/api/auth/me', cookies: next })).statusCode, 200)
})

t.test('no, an empty or an unknown refresh cookie is 401 REFRESH_INVALID and clears nothing', async (t) => {
  for (const cookies of [{}, { [REFRESH]: '' }, { [REFRESH]: 'made-up-token' }]) {
    const response = await refresh(app, cookies)
    t.equal(response.statusCode, 401)
    t.equal(response.json().code, 'REFRESH_INVALID')
    t.notOk(response.headers['set-cookie'], 'a 401 from a lost race never clears cookies')
  }
})

t.test('two concurrent refreshes with one token both succeed and the user stays signed in', async (t) => {
  const alice = await signIn(app)
  const [first, second] = await Promise.all([refresh(app, alice.cookies), refresh(app, alice.cookies)])
  t.equal(first.statusCode, 200)
  t.equal(second.statusCode, 200)
  const withRefresh = [first, second].filter((r) => setCookieLines(r).some((c) => c.startsWith(REFRESH)))
  t.equal(withRefresh.length, 1, 'exactly one of them rotated the refresh token; the other got only an access cookie')
  const latest = cookiesFrom(second, cookiesFrom(first, alice.cookies))
  t.equal((await app.inject({ url: '/api/auth/me', cookies: latest })).statusCode, 200)
  t.equal((await refresh(app, cookiesFrom(withRefresh[0]!, alice.cookies))).statusCode, 200, 'the newest refresh token still works')
})

t.test('the replaced token within the grace gets a new access cookie and no refresh cookie', async (t) => {
  const alice = await signIn(app)
  const rotated = await refresh(app, alice.cookies)
  t.equal(rotated.statusCode, 200)
  const again = await refresh(app, alice.cookies)
  t.equal(again.statusCode, 200)
  const names = setCookieLines(again).map((c) => c.split('=')[0])
  t.same(names, [ACCESS])
  const [session] = await app.db.select().from(sessions).where(eq(sessions.id, sessionOf(alice.cookies)))
  t.equal(session!.revokedAt, null, 'the session lives on')
})

t.test('a replaced token presented after the grace is reuse: 401 REFRESH_REUSED, the whole session revoked', async (t) => {
  const strict = await buildTestApp(t, { refreshReuseGrace: 0 })
  const alice = await signIn(strict)
  const rotated = await refresh(strict, alice.cookies)
  const newest = cookiesFrom(rotated, alice.cookies)
  await sleep(5)
  const reuse = await refresh(strict, alice.cookies)
  t.equal(reuse.statusCode, 401)
  t.equal(reuse.json().code, 'REFRESH_REUSED')
  t.match(setCookieLines(reuse).join('\n'), /__Host-access_token=; Max-Age=0/, 'real reuse clears the cookies')
  const [session] = await strict.db.select().from(sessions).where(eq(sessions.id, sessionOf(alice.cookies)))
  t.not(session!.revokedAt, null, 'session revoked')
  t.equal((await refresh(strict, newest)).json().code, 'REFRESH_INVALID', 'the newest refresh token died with it')
  t.equal((await strict.inject({ url: '/api/auth/me', cookies: newest })).json().code, 'SESSION_REVOKED', 'and the access token')
  const events = await strict.db.select().from(auditEvents).where(eq(auditEvents.type, 'refresh_reused'))
  t.match(events, [{ userId: alice.id }])
})

t.test('an older token in the chain is reuse too', async (t) => {
  const strict = await buildTestApp(t, { refreshReuseGrace: 0 })
  const alice = await signIn(strict)
  const second = cookiesFrom(await refresh(strict, alice.cookies), alice.cookies)
  await refresh(strict, second)
  await sleep(5)
  t.equal((await refresh(strict, alice.cookies)).json().code, 'REFRESH_REUSED')
})

t.test('SESSION_MAX_AGE ends a session whatever the refreshes; the idle limit ends an unused one', async (t) => {
  const short = await buildTestApp(t, { sessionMaxAge: 1 })
  const alice = await signIn(short)
  await sleep(1100)
  t.equal((await refresh(short, alice.cookies)).json().code, 'REFRESH_INVALID', 'over the absolute age')
  t.equal((await short.inject({ url: '/api/auth/me', cookies: alice.cookies })).json().code, 'SESSION_REVOKED', 'the access token dies with the session')

  const idle = await buildTestApp(t, { refreshTokenTtl: 1 })
  const bob = await signIn(idle)
  await sleep(1100)
  t.equal((await refresh(idle, bob.cookies)).json().code, 'REFRESH_INVALID', 'idle too long')
})

t.test('a refresh for a signed-out session is 401 REFRESH_INVALID', async (t) => {
  const alice = await signIn(app)
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/logout', cookies: alice.cookies })).statusCode, 204)
  t.equal((await refresh(app, alice.cookies)).json().code, 'REFRESH_INVALID')
})
