import t from 'tap'
import { eq, sql } from 'drizzle-orm'
import postgres from 'postgres'
import { issueSecret } from '../src/db/queries/one-time-secrets.js'
import { purgeEndedRows } from '../src/db/queries/purge.js'
import { auditEvents, oneTimeSecrets, refreshTokens, sessions } from '../src/db/schema.js'
import { buildTestApp, cookiesFrom, signIn, STRONG_PASSWORD } from './helpers/app.js'
import { decodePayload } from './helpers/jwt.js'

const ACCESS = '__Host-access_token'
const app = await buildTestApp(t)
const sessionOf = (cookies: Record<string, string>) => decodePayload(cookies[ACCESS]!).sid as string
const isRevoked = async (id: string) => (await app.db.select().from(sessions).where(eq(sessions.id, id)))[0]?.revokedAt !== null

t.test('signing in again ends the session the browser presented', async (t) => {
  const alice = await signIn(app)
  const old = sessionOf(alice.cookies)
  const again = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: STRONG_PASSWORD }, cookies: alice.cookies })
  t.equal(again.statusCode, 200)
  t.ok(await isRevoked(old), 'the old session is revoked')
  t.equal((await app.inject({ url: '/api/auth/me', cookies: alice.cookies })).json().code, 'SESSION_REVOKED', 'its access token stops working')
  const next = cookiesFrom(again, alice.cookies)
  t.not(sessionOf(next), old)
  t.equal((await app.inject({ url: '/api/auth/me', cookies: next })).statusCode, 200, 'the new one works')
  const [event] = await app.db.select().from(auditEvents).where(eq(auditEvents.type, 'login')).orderBy(sql`${auditEvents.at} desc`).limit(1)
  t.match(event?.detail, { replacedSessionIds: [old] })

  // Only the refresh cookie (the access cookie expired): that session ends too.
  const bob = await signIn(app)
  const bobOld = sessionOf(bob.cookies)
  const refreshOnly = { '__Secure-refresh_token': bob.cookies['__Secure-refresh_token']! }
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: bob.username, password: STRONG_PASSWORD }, cookies: refreshOnly })).statusCode, 200)
  t.ok(await isRevoked(bobOld), 'found through the refresh token')

  // A failed sign-in ends nothing, and another browser's session is untouched.
  const carol = await signIn(app)
  const wrong = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: carol.username, password: 'not-the-password' }, cookies: carol.cookies })
  t.equal(wrong.statusCode, 401)
  t.notOk(await isRevoked(sessionOf(carol.cookies)), 'a wrong password revokes nothing')
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: carol.username, password: STRONG_PASSWORD } })).statusCode, 200)
  t.notOk(await isRevoked(sessionOf(carol.cookies)), 'a sign-in elsewhere leaves this session alone')
})

t.test('ended sessions and spent one-time secrets are purged after a day; live ones and audit rows stay', async (t) => {
  const live = await signIn(app)
  const revoked = await signIn(app)
  const idle = await signIn(app)
  const recent = await signIn(app)
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/logout', cookies: revoked.cookies })).statusCode, 204)
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/logout', cookies: recent.cookies })).statusCode, 204)
  // Moved in the database rather than waited for: one revoked two days ago, one idle since then.
  await app.db.update(sessions).set({ revokedAt: sql`now() - interval '2 days'` }).where(eq(sessions.id, sessionOf(revoked.cookies)))
  await app.db.update(sessions).set({ expiresAt: sql`now() - interval '2 days'` }).where(eq(sessions.id, sessionOf(idle.cookies)))
  const auditBefore = (await app.db.select({ n: sql<number>`count(*)::int` }).from(auditEvents))[0]!.n

  await issueSecret(app.db, { kind: 'password_reset', userId: live.id, ttlSeconds: 60 })
  const used = await issueSecret(app.db, { kind: 'email_verification', userId: live.id, ttlSeconds: 3600 })
  await app.db.update(oneTimeSecrets).set({ usedAt: sql`now() - interval '2 days'` }).where(eq(oneTimeSecrets.kind, 'email_verification'))
  await issueSecret(app.db, { kind: 'mfa_pending', userId: live.id, ttlSeconds: 60 })
  await app.db.update(oneTimeSecrets).set({ expiresAt: sql`now() - interval '2 days'` }).where(eq(oneTimeSecrets.kind, 'mfa_pending'))
  t.ok(used)

  const result = await purgeEndedRows(app.db)
  t.ok(result !== undefined, 'this instance took the lock')
  const remaining = new Set((await app.db.select({ id: sessions.id }).from(sessions)).map((row) => row.id))
  t.ok(remaining.has(sessionOf(live.cookies)), 'a live session stays')
  t.ok(remaining.has(sessionOf(recent.cookies)), 'a session revoked a moment ago stays (within the retention)')
  t.notOk(remaining.has(sessionOf(revoked.cookies)), 'a session revoked two days ago is gone')
  t.notOk(remaining.has(sessionOf(idle.cookies)), 'a session idle-expired two days ago is gone')
  const orphanTokens = await app.db.select().from(refreshTokens).where(eq(refreshTokens.sessionId, sessionOf(revoked.cookies)))
  t.equal(orphanTokens.length, 0, 'its refresh tokens went with it')
  const kinds = (await app.db.select({ kind: oneTimeSecrets.kind }).from(oneTimeSecrets)).map((row) => row.kind)
  t.same(kinds, ['password_reset'], 'the live secret stays; the long-used and long-expired ones are gone')
  t.equal((await app.db.select({ n: sql<number>`count(*)::int` }).from(auditEvents))[0]!.n, auditBefore, 'audit rows are kept')
  t.equal((await app.inject({ url: '/api/auth/me', cookies: live.cookies })).statusCode, 200)
})

t.test('one instance at a time: a purge finding the lock taken skips its round', { skip: app.config.databaseUrl === undefined ? 'needs a second connection (TEST_DATABASE_URL)' : false }, async (t) => {
  const other = postgres(app.config.databaseUrl!, { max: 1, onnotice: () => {} })
  t.teardown(() => other.end({ timeout: 5 }))
  await other`select pg_advisory_lock(7310442020)`
  t.equal(await purgeEndedRows(app.db), undefined, 'skipped while another instance purges')
  await other`select pg_advisory_unlock(7310442020)`
  t.ok(await purgeEndedRows(app.db), 'runs once the lock is free')
})
