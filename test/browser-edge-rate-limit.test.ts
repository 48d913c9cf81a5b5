import t from 'tap'
import { randomUUID } from 'node:crypto'
import { createConnection } from 'node:net'
import { eq, sql } from 'drizzle-orm'
import { CREDENTIAL_LIMITS } from '../plugins/rate-limit.js'
import { auditEvents, sessions } from '../src/db/schema.js'
import { buildTestApp, signIn, STRONG_PASSWORD } from './helpers/app.js'

const login = (app: Awaited<ReturnType<typeof buildTestApp>>, username: string, password: string, remoteAddress = '198.51.100.7', headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password }, remoteAddress, headers })

t.test('guessing one account is cut off per username: 429 RATE_LIMITED with Retry-After, before any hashing', async (t) => {
  const app = await buildTestApp(t)
  const alice = await signIn(app)
  // signIn already spent two requests on this username (register, login).
  const limit = CREDENTIAL_LIMITS.perUsername.max - 2
  for (let i = 0; i < limit; i++) {
    // A different address each time: a distributed guess at one account.
    t.equal((await login(app, alice.username, `guess-number-${i}`, `203.0.113.${i + 1}`)).statusCode, 401)
  }
  const failuresBefore = (await app.db.select({ n: sql<number>`count(*)::int` }).from(auditEvents).where(eq(auditEvents.type, 'login_failed')))[0]!.n
  const limited = await login(app, alice.username.toUpperCase(), STRONG_PASSWORD, '203.0.113.200')
  t.equal(limited.statusCode, 429)
  t.match(limited.json(), { statusCode: 429, error: 'Too Many Requests', code: 'RATE_LIMITED', message: /try again in/ })
  t.match(limited.headers['retry-after'], /^\d+$/)
  t.notOk(limited.headers['set-cookie'], 'even the right password does not sign in while limited')
  const failuresAfter = (await app.db.select({ n: sql<number>`count(*)::int` }).from(auditEvents).where(eq(auditEvents.type, 'login_failed')))[0]!.n
  t.equal(failuresAfter, failuresBefore, 'the handler never ran: no password was checked')
  t.equal((await login(app, 'someone_else', 'whatever-password', '203.0.113.201')).statusCode, 401, 'other accounts are unaffected')
})

t.test('one address is cut off across all credential routes', async (t) => {
  const app = await buildTestApp(t)
  const ip = '198.51.100.99'
  let lastStatus = 0
  for (let i = 0; i < CREDENTIAL_LIMITS.perIp.max; i++) {
    lastStatus = (await login(app, `nobody${i}`, 'some-password-x', ip)).statusCode
  }
  t.equal(lastStatus, 401)
  const register = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username: 'fresh_name', password: STRONG_PASSWORD }, remoteAddress: ip })
  t.equal(register.statusCode, 429, 'registration shares the per-address budget')
  const token = await app.inject({ method: 'POST', url: '/api/auth/token', payload: { username: 'fresh_name', password: STRONG_PASSWORD }, remoteAddress: ip })
  t.equal(token.statusCode, 429)
  t.equal(token.json().code, 'RATE_LIMITED')
  const sessionsCount = (await app.db.select({ n: sql<number>`count(*)::int` }).from(sessions))[0]!.n
  t.equal(sessionsCount, 0)
  t.equal((await login(app, 'nobody', 'some-password-x', '198.51.100.100')).statusCode, 401, 'another address is not limited')
})

t.test('X-Forwarded-For is believed only from a TRUST_PROXY address', async (t) => {
  const untrusting = await buildTestApp(t)
  // Without TRUST_PROXY a client cannot dodge its limit by inventing forwarded addresses.
  for (let i = 0; i < CREDENTIAL_LIMITS.perIp.max; i++) {
    await login(untrusting, `nobody${i}`, 'some-password-x', '198.51.100.50', { 'x-forwarded-for': `10.9.${i}.1` })
  }
  t.equal((await login(untrusting, 'nobody', 'some-password-x', '198.51.100.50', { 'x-forwarded-for': '10.9.99.1' })).statusCode, 429)

  const behindProxy = await buildTestApp(t, { trustProxy: ['127.0.0.1'] })
  for (let i = 0; i < CREDENTIAL_LIMITS.perIp.max; i++) {
    await login(behindProxy, `nobody${i}`, 'some-password-x', '127.0.0.1', { 'x-forwarded-for': '192.0.2.10' })
  }
  t.equal((await login(behindProxy, 'nobody', 'some-password-x', '127.0.0.1', { 'x-forwarded-for': '192.0.2.10' })).statusCode, 429, 'the forwarded client is limited')
  t.equal((await login(behindProxy, 'nobody', 'some-password-x', '127.0.0.1', { 'x-forwarded-for': '192.0.2.11' })).statusCode, 401, 'another client behind the same proxy is not')
  const [event] = await behindProxy.db.select().from(auditEvents).where(eq(auditEvents.type, 'login_failed')).limit(1)
  t.equal(event!.ip, '192.0.2.10', 'the audit log records the real client address')
})

t.test('a lenient global limit applies to every route except health; RATE_LIMIT_ALLOWLIST exempts addresses', async (t) => {
  const app = await buildTestApp(t, { rateLimitAllowList: ['192.0.2.200'] })
  const max = CREDENTIAL_LIMITS.global.max
  const flood = await Promise.all(Array.from({ length: max }, () => app.inject({ url: '/api/tasks', remoteAddress: '192.0.2.77' })))
  t.ok(flood.every((r) => r.statusCode === 401), 'under the limit: answered normally')
  const over = await app.inject({ url: '/api/tasks', remoteAddress: '192.0.2.77' })
  t.equal(over.statusCode, 429)
  t.equal(over.json().code, 'RATE_LIMITED')
  t.equal((await app.inject({ url: '/api/health', remoteAddress: '192.0.2.77' })).statusCode, 200, 'health is never limited')
  for (let i = 0; i < CREDENTIAL_LIMITS.perIp.max + 2; i++) {
    t.equal((await login(app, `nobody${i}`, 'some-password-x', '192.0.2.200')).statusCode, 401)
  }
})

async function redisAvailable (): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port: 6379 })
    socket.setTimeout(500)
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
    socket.once('timeout', () => { socket.destroy(); resolve(false) })
  })
}

t.test('with REDIS_URL two instances share their counters', { skip: await redisAvailable() ? false : 'no Redis on 127.0.0.1:6379' }, async (t) => {
  const first = await buildTestApp(t, { redisUrl: 'redis://127.0.0.1:6379' })
  const second = await buildTestApp(t, { redisUrl: 'redis://127.0.0.1:6379' })
  const username = `shared_${randomUUID().slice(0, 8)}`
  const ip = `198.18.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`
  for (let i = 0; i < CREDENTIAL_LIMITS.perUsername.max; i++) {
    const instance = i % 2 === 0 ? first : second
    t.equal((await login(instance, username, 'guess-password', ip)).statusCode, 401)
  }
  t.equal((await login(first, username, 'guess-password', ip)).statusCode, 429, 'the limit counts requests made to either instance')
  t.equal((await login(second, username, 'guess-password', ip)).statusCode, 429)
})

t.test('an unreachable Redis lets requests through instead of failing them', async (t) => {
  const app = await buildTestApp(t, { redisUrl: 'redis://127.0.0.1:1' })
  const alice = await signIn(app)
  t.equal((await app.inject({ url: '/api/auth/me', cookies: alice.cookies })).statusCode, 200)
})
