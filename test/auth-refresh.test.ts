import t from 'tap'
import { eq, sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { auditEvents, refreshTokens, sessions } from '../src/db/schema.js'
import { buildTestApp, cookiesFrom, setCookieLines, signIn, type Cookies } from './helpers/app.js'
import { decodePayload } from './helpers/jwt.js'

const REFRESH = '__Secure-refresh_token'
const ACCESS = '__Host-access_token'
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
  // The default grace; the replacement moved 11 s back in the database rather than waited for.
  const strict = await buildTestApp(t)
  t.equal(strict.config.refreshReuseGrace, 10)
  const alice = await signIn(strict)
  const rotated = await refresh(strict, alice.cookies)
  const newest = cookiesFrom(rotated, alice.cookies)
  await strict.db.update(refreshTokens).set({ replacedAt: sql`${refreshTokens.replacedAt} - interval '11 seconds'` })
    .where(eq(refreshTokens.sessionId, sessionOf(alice.cookies)))
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

t.test('an older token in the chain is reuse too, even inside the default grace', async (t) => {
  t.equal(app.config.refreshReuseGrace, 10, 'the default grace')
  const alice = await signIn(app)
  const second = cookiesFrom(await refresh(app, alice.cookies), alice.cookies)
  const third = cookiesFrom(await refresh(app, second), second)
  // Two rotations old, a few milliseconds after it was replaced: only the token the newest one
  // replaced is ever honoured.
  const reuse = await refresh(app, alice.cookies)
  t.equal(reuse.statusCode, 401)
  t.equal(reuse.json().code, 'REFRESH_REUSED')
  const [session] = await app.db.select().from(sessions).where(eq(sessions.id, sessionOf(alice.cookies)))
  t.not(session!.revokedAt, null, 'the session is revoked')
  t.equal((await refresh(app, third)).json().code, 'REFRESH_INVALID', 'the newest refresh token died with it')
})

t.test('a grace answer leaves an audit trace', async (t) => {
  const alice = await signIn(app)
  await refresh(app, alice.cookies)
  t.equal((await refresh(app, alice.cookies)).statusCode, 200)
  const events = await app.db.select().from(auditEvents).where(eq(auditEvents.type, 'refresh_grace'))
  t.match(events.filter((event) => event.userId === alice.id), [{ userId: alice.id, detail: { sessionId: sessionOf(alice.cookies) } }])
})

t.test('SESSION_MAX_AGE ends a session whatever the refreshes; the idle limit ends an unused one', async (t) => {
  // Timestamps are moved in the database rather than waited for.
  const capped = await buildTestApp(t, { refreshTokenTtl: 600, sessionMaxAge: 3600 })
  const alice = await signIn(capped)
  const sid = sessionOf(alice.cookies)
  const rowOf = async () => (await capped.db.select().from(sessions).where(eq(sessions.id, sid)))[0]!
  // Nine idle minutes later the session is still alive, and a refresh moves its idle limit forward.
  await capped.db.update(sessions).set({ expiresAt: sql`now() + interval '1 minute'` }).where(eq(sessions.id, sid))
  let jar = alice.cookies
  const refreshed = await refresh(capped, jar)
  t.equal(refreshed.statusCode, 200, 'refreshed within the idle limit')
  jar = cookiesFrom(refreshed, jar)
  t.ok((await rowOf()).expiresAt.getTime() > Date.now() + 9 * 60_000, 'the refresh moved the idle limit forward')
  // The absolute limit close: a refresh never moves the idle limit past it.
  await capped.db.update(sessions).set({ absoluteExpiresAt: sql`now() + interval '30 seconds'` }).where(eq(sessions.id, sid))
  const nearCap = await refresh(capped, jar)
  t.equal(nearCap.statusCode, 200)
  jar = cookiesFrom(nearCap, jar)
  const row = await rowOf()
  t.ok(row.expiresAt.getTime() <= row.absoluteExpiresAt.getTime(), 'the idle limit stops at the absolute one')
  // Over the absolute age while the idle limit would still allow it (as if refreshed a second ago).
  await capped.db.update(sessions).set({ absoluteExpiresAt: sql`now() - interval '1 second'`, expiresAt: sql`now() + interval '5 minutes'` })
    .where(eq(sessions.id, sid))
  t.equal((await refresh(capped, jar)).json().code, 'REFRESH_INVALID', 'over the absolute age, however recently refreshed')
  t.equal((await capped.inject({ url: '/api/auth/me', cookies: jar })).json().code, 'SESSION_REVOKED', 'the access token dies with the session')

  const bob = await signIn(capped)
  await capped.db.update(sessions).set({ expiresAt: sql`now() - interval '1 second'` }).where(eq(sessions.id, sessionOf(bob.cookies)))
  const [bobRow] = await capped.db.select().from(sessions).where(eq(sessions.id, sessionOf(bob.cookies)))
  t.ok(bobRow!.absoluteExpiresAt.getTime() > Date.now(), 'within the absolute age')
  t.equal((await refresh(capped, bob.cookies)).json().code, 'REFRESH_INVALID', 'idle too long')
})

t.test('a refresh for a signed-out session is 401 REFRESH_INVALID', async (t) => {
  const alice = await signIn(app)
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/logout', cookies: alice.cookies })).statusCode, 204)
  t.equal((await refresh(app, alice.cookies)).json().code, 'REFRESH_INVALID')
})

t.test('a 401 from a lost race never clears cookies', async (t) => {
  // Another tab signs out while this one refreshes: whichever loses gets a 401 that sets nothing,
  // so it cannot wipe cookies a newer sign-in may already have put in the shared jar.
  const alice = await signIn(app)
  const [, raced] = await Promise.all([
    app.inject({ method: 'POST', url: '/api/auth/logout', cookies: alice.cookies }),
    refresh(app, alice.cookies),
  ])
  if (raced.statusCode !== 200) {
    t.equal(raced.json().code, 'REFRESH_INVALID')
    t.notOk(raced.headers['set-cookie'], 'the racing refresh cleared nothing')
  }
  const late = await refresh(app, alice.cookies)
  t.equal(late.statusCode, 401)
  t.equal(late.json().code, 'REFRESH_INVALID')
  t.notOk(late.headers['set-cookie'], 'a refresh that lost to the sign-out cleared nothing')
  // Many tabs racing with one token: one rotates, the rest are honoured; none clears anything.
  const bob = await signIn(app)
  const answers = await Promise.all(Array.from({ length: 5 }, () => refresh(app, bob.cookies)))
  t.same(answers.map((answer) => answer.statusCode), [200, 200, 200, 200, 200])
  t.notOk(answers.some((answer) => setCookieLines(answer).some((line) => /Max-Age=0/.test(line))), 'no cookie was cleared')
})
