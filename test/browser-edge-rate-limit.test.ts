import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { and, eq, sql } from 'drizzle-orm'
import { CREDENTIAL_LIMITS } from '../plugins/rate-limit.js'
import { auditEvents, sessions } from '../src/db/schema.js'
import { buildTestApp, cookiesFrom, setCookieLines, signIn, STRONG_PASSWORD } from './helpers/app.js'
import { FaultProxy } from './helpers/fault-proxy.js'
import { redisSkip } from './helpers/tools.js'

const login = (app: Awaited<ReturnType<typeof buildTestApp>>, username: string, password: string, remoteAddress = '198.51.100.7', headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password }, remoteAddress, headers })

const loginFailures = async (app: Awaited<ReturnType<typeof buildTestApp>>) =>
  (await app.db.select({ n: sql<number>`count(*)::int` }).from(auditEvents).where(eq(auditEvents.type, 'login_failed')))[0]!.n
// A different address for each attempt: a distributed guess at one account, never the per-address limit.
let nextAddress = 0
const anotherAddress = () => { nextAddress += 1; return `203.0.${Math.floor(nextAddress / 250)}.${(nextAddress % 250) + 1}` }
const DEVICE = '__Secure-device'
// One app for the scenarios that need the default configuration: each uses its own accounts and addresses.
const app = await buildTestApp(t)

t.test('per account only failures count: registrations and successful sign-ins never do', async (t) => {
  const alice = await signIn(app)
  // Far more successful sign-ins (and a taken name registered again) than the per-account limit.
  for (let i = 0; i < CREDENTIAL_LIMITS.perAccount.max + 5; i++) {
    t.equal((await login(app, alice.username, STRONG_PASSWORD, anotherAddress())).statusCode, 200)
  }
  for (let i = 0; i < 3; i++) {
    const again = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username: alice.username, password: STRONG_PASSWORD }, remoteAddress: anotherAddress() })
    t.equal(again.statusCode, 409)
  }
  for (let i = 0; i < CREDENTIAL_LIMITS.perAccount.max; i++) {
    t.equal((await login(app, alice.username, `guess-number-${i}`, anotherAddress())).statusCode, 401, 'every allowed failure is still answered')
  }
  const failuresBefore = await loginFailures(app)
  // While limited, the right password gets the same 429 as a wrong one: no oracle.
  const right = await login(app, alice.username.toUpperCase(), STRONG_PASSWORD, anotherAddress())
  const wrong = await login(app, alice.username, 'yet-another-guess', anotherAddress())
  for (const [label, limited] of [['right password', right], ['wrong password', wrong]] as const) {
    t.equal(limited.statusCode, 429, label)
    t.match(limited.json(), { statusCode: 429, error: 'Too Many Requests', code: 'RATE_LIMITED', message: /^Too many requests; try again in \d+ seconds$/ }, label)
    t.match(limited.headers['retry-after'], /^\d+$/, label)
    t.notOk(limited.headers['set-cookie'], `${label}: nothing set`)
  }
  const withoutSeconds = (body: string) => body.replace(/\d+ seconds/, 'N seconds')
  t.equal(withoutSeconds(right.body), withoutSeconds(wrong.body), 'the same body for the right and a wrong password')
  t.equal(await loginFailures(app), failuresBefore, 'the handler never checked a password')
  t.equal((await login(app, 'someone_else', 'whatever-password', anotherAddress())).statusCode, 401, 'other accounts are unaffected')
})

t.test('lockout is no weapon: a spray from 20 addresses does not keep the owner\'s browser out', async (t) => {
  const owner = await signIn(app)
  t.ok(owner.cookies[DEVICE], 'a sign-in in a browser leaves a device cookie')
  const first = await login(app, owner.username, STRONG_PASSWORD, anotherAddress())
  t.match(setCookieLines(first).find((line) => line.startsWith(`${DEVICE}=`)),
    /^__Secure-device=[^;]+; Max-Age=31536000; Path=\/api\/auth; HttpOnly; Secure; Partitioned; SameSite=None$/)
  for (let i = 0; i < 20; i++) {
    t.equal((await login(app, owner.username, `spray-guess-${i}`, anotherAddress())).statusCode, i < CREDENTIAL_LIMITS.perAccount.max ? 401 : 429)
  }
  const stranger = await login(app, owner.username, STRONG_PASSWORD, anotherAddress())
  t.equal(stranger.statusCode, 429, 'a new client with the right password is still limited')
  // The right password from a new address each time, carrying a device cookie.
  const withDeviceCookie = (device: string) => app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { username: owner.username, password: STRONG_PASSWORD },
    remoteAddress: anotherAddress(),
    cookies: { [DEVICE]: device },
  })
  const ownersBrowser = await withDeviceCookie(owner.cookies[DEVICE]!)
  t.equal(ownersBrowser.statusCode, 200, 'the browser that signed in before gets through at once')
  t.equal((await app.inject({ url: '/api/auth/me', cookies: cookiesFrom(ownersBrowser) })).json().user.id, owner.id)

  // A device cookie for another account, or a forged one, is no pass.
  const other = await signIn(app)
  const foreign = await withDeviceCookie(other.cookies[DEVICE]!)
  t.equal(foreign.statusCode, 429, 'another user\'s device cookie')
  const signedValue = owner.cookies[DEVICE]!.split('.').slice(0, 2).join('.')
  const forged = await withDeviceCookie(`${signedValue}.forged-signature`)
  t.equal(forged.statusCode, 429, 'a device cookie with a forged signature')
})

t.test('a device\'s own failures count against it alone', async (t) => {
  const owner = await signIn(app)
  const device = { [DEVICE]: owner.cookies[DEVICE]! }
  const fromDevice = (password: string) => app.inject({
    method: 'POST', url: '/api/auth/login', payload: { username: owner.username, password }, remoteAddress: anotherAddress(), cookies: device,
  })
  for (let i = 0; i < CREDENTIAL_LIMITS.perAccount.max; i++) t.equal((await fromDevice(`typo-guess-${i}`)).statusCode, 401)
  t.equal((await fromDevice(STRONG_PASSWORD)).statusCode, 429, 'the device is limited after its own failures')
  t.equal((await login(app, owner.username, STRONG_PASSWORD, anotherAddress())).statusCode, 200, 'they did not count against the account')
})

t.test('POST /password is limited per account and each failure is audited', async (t) => {
  const alice = await signIn(app)
  // The stolen session: cookies without the device cookie.
  const stolen = { '__Host-access_token': alice.cookies['__Host-access_token']! }
  const change = (currentPassword: string) => app.inject({
    method: 'POST', url: '/api/auth/password', payload: { currentPassword, newPassword: 'a-brand-new-Passphrase-9' }, cookies: stolen, remoteAddress: anotherAddress(),
  })
  for (let i = 0; i < CREDENTIAL_LIMITS.perAccount.max; i++) {
    const wrong = await change(`guess-${i}`)
    t.equal(wrong.statusCode, 401)
    t.equal(wrong.json().code, 'BAD_CREDENTIALS')
  }
  const right = await change(STRONG_PASSWORD)
  t.equal(right.statusCode, 429, 'the right current password gets the same 429')
  t.equal(right.json().code, 'RATE_LIMITED')
  const failures = await app.db.select().from(auditEvents).where(and(eq(auditEvents.type, 'password_change_failed'), eq(auditEvents.userId, alice.id)))
  t.equal(failures.length, CREDENTIAL_LIMITS.perAccount.max, 'one audit row per failure')
  t.match(failures[0], { userId: alice.id, actorId: alice.id })
  t.equal((await login(app, alice.username, STRONG_PASSWORD, anotherAddress())).statusCode, 429, 'the account\'s budget is shared with sign-in')
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

t.test('with REDIS_URL two instances share their counters', { skip: await redisSkip(t) }, async (t) => {
  const first = await buildTestApp(t, { redisUrl: 'redis://127.0.0.1:6379' })
  const second = await buildTestApp(t, { redisUrl: 'redis://127.0.0.1:6379' })
  const username = `shared_${randomUUID().slice(0, 8)}`
  for (let i = 0; i < CREDENTIAL_LIMITS.perAccount.max; i++) {
    const instance = i % 2 === 0 ? first : second
    t.equal((await login(instance, username, 'guess-password', anotherAddress())).statusCode, 401)
  }
  t.equal((await login(first, username, 'guess-password', anotherAddress())).statusCode, 429, 'the limit counts failures made at either instance')
  t.equal((await login(second, username, 'guess-password', anotherAddress())).statusCode, 429)
})

/** The limits hold: per address (30 requests) and per account (10 failures). */
async function assertLimitsHold (t: Test, app: Awaited<ReturnType<typeof buildTestApp>>, label: string) {
  const username = `nobody_${randomUUID().slice(0, 8)}`
  for (let i = 0; i < CREDENTIAL_LIMITS.perAccount.max; i++) {
    t.equal((await login(app, username, 'guess-password', anotherAddress())).statusCode, 401)
  }
  t.equal((await login(app, username, 'guess-password', anotherAddress())).statusCode, 429, `${label}: per account`)
  const ip = `198.18.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`
  for (let i = 0; i < CREDENTIAL_LIMITS.perIp.max; i++) await login(app, `someone${i}_${randomUUID().slice(0, 6)}`, 'guess-password', ip)
  t.equal((await login(app, `last_${randomUUID().slice(0, 6)}`, 'guess-password', ip)).statusCode, 429, `${label}: per address`)
}

t.test('an unreachable Redis never switches the limits off: counting moves to the instance', async (t) => {
  const app = await buildTestApp(t, { redisUrl: 'redis://127.0.0.1:1' })
  const alice = await signIn(app)
  t.equal((await app.inject({ url: '/api/auth/me', cookies: alice.cookies })).statusCode, 200, 'requests are served')
  await assertLimitsHold(t, app, 'Redis unreachable from the start')
})

t.test('Redis stopped mid-run: the limits go on in the instance', { skip: await redisSkip(t) }, async (t) => {
  const proxy = await FaultProxy.start({ host: '127.0.0.1', port: 6379 })
  t.teardown(() => proxy.close())
  const app = await buildTestApp(t, { redisUrl: proxy.urlFor('redis://127.0.0.1:6379') })
  const username = `midrun_${randomUUID().slice(0, 8)}`
  t.equal((await login(app, username, 'guess-password', anotherAddress())).statusCode, 401, 'counted in Redis')
  t.ok(proxy.connections > 0, 'the app talks to Redis through the proxy')
  proxy.cut()
  await assertLimitsHold(t, app, 'Redis stopped')
})
