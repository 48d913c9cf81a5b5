import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { eq } from 'drizzle-orm'
import type { LightMyRequestResponse } from 'fastify'
import { hashSecret } from '../src/db/queries/one-time-secrets.js'
import { oneTimeSecrets } from '../src/db/schema.js'
import { buildTestApp, STRONG_PASSWORD, uniqueName } from './helpers/app.js'
import { emailKit } from './helpers/email.js'
import { TestSmtpServer, tokenIn } from './helpers/smtp.js'

// The mailed links' lifetimes, and the per-client-address limit on the routes that take an address or
// a link. The numbers are API.md's, written out here: the code's own constants are what is checked.
const VERIFICATION_LIFETIME_MS = 24 * 60 * 60 * 1000
const RESET_LIFETIME_MS = 30 * 60 * 1000
const CREDENTIAL_REQUESTS_PER_MINUTE = 30

const smtp = await TestSmtpServer.start()
t.teardown(() => smtp.stop())
// 127.0.0.1 (making users) is not limited; the limit tests come from addresses of their own.
const app = await buildTestApp(t, { smtpUrl: smtp.url, rateLimitAllowList: ['127.0.0.1'] })
const { newAddress, post, userWithAddress } = emailKit(app, smtp)

/** The stored row of a mailed token, found by its hash: its kind and how long it lives. */
async function lifetimeOf (token: string) {
  const [row] = await app.db.select({ kind: oneTimeSecrets.kind, createdAt: oneTimeSecrets.createdAt, expiresAt: oneTimeSecrets.expiresAt })
    .from(oneTimeSecrets).where(eq(oneTimeSecrets.secretHash, hashSecret(token)))
  return row === undefined ? undefined : { kind: row.kind, lifetimeMs: row.expiresAt.getTime() - row.createdAt.getTime() }
}

t.test('a verification link lives 24 hours and a reset link 30 minutes, as their mails say', async (t) => {
  const email = newAddress()
  t.equal((await post('/api/auth/register', { username: uniqueName(), password: STRONG_PASSWORD, email })).statusCode, 201)
  const atRegister = (await smtp.waitFor(email))[0]!
  t.same(await lifetimeOf(tokenIn(atRegister)), { kind: 'email_verification', lifetimeMs: VERIFICATION_LIFETIME_MS }, 'the link sent at register')
  t.match(atRegister.text, /for 24 hours/)

  const user = await userWithAddress()
  const next = newAddress()
  await post('/api/auth/email', { email: next, currentPassword: user.password }, user.cookies)
  const changed = (await smtp.waitFor(next))[0]!
  t.same(await lifetimeOf(tokenIn(changed)), { kind: 'email_verification', lifetimeMs: VERIFICATION_LIFETIME_MS }, 'the link sent for a new address')

  await post('/api/auth/password/forgot', { email: user.email })
  const reset = (await smtp.waitFor(user.email, 2))[1]!
  t.same(await lifetimeOf(tokenIn(reset)), { kind: 'password_reset', lifetimeMs: RESET_LIFETIME_MS }, 'the reset link')
  t.match(reset.text, /for 30 minutes/)
})

let clients = 0
/** A client address of its own per use: the credential routes share one counter per address. */
const nextClient = () => `10.7.0.${++clients}`

/** Sends `attempt` from `client` as many times as the limit lets through; returns their statuses. */
async function useUpTheMinute (client: string, attempt: (client: string) => Promise<LightMyRequestResponse>) {
  const statuses = new Set<number>()
  for (let i = 0; i < CREDENTIAL_REQUESTS_PER_MINUTE; i++) statuses.add((await attempt(client)).statusCode)
  return [...statuses]
}

function isRateLimited (t: Test, response: LightMyRequestResponse) {
  t.equal(response.statusCode, 429)
  t.equal(response.json().code, 'RATE_LIMITED')
  const retryAfter = Number(response.headers['retry-after'])
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After in seconds, within the minute (${response.headers['retry-after']})`)
}

t.test('/password/forgot is limited per client address: 30 a minute, then 429 RATE_LIMITED with Retry-After', async (t) => {
  // A new target address each time, so that the per-target limit (5 an hour) is not what answers.
  const forgot = (client: string) => app.inject({ method: 'POST', url: '/api/auth/password/forgot', payload: { email: newAddress() }, remoteAddress: client })
  const client = nextClient()
  t.same(await useUpTheMinute(client, forgot), [202], 'the first 30 are accepted')
  isRateLimited(t, await forgot(client))
  t.equal((await forgot(nextClient())).statusCode, 202, 'another client address is not held back')
})

t.test('/password/reset is limited per client address: past the limit even a good link changes nothing', async (t) => {
  const user = await userWithAddress()
  await post('/api/auth/password/forgot', { email: user.email })
  const token = tokenIn((await smtp.waitFor(user.email, 2))[1]!)
  const newPassword = 'another-Lantern-77-river'
  const reset = (client: string, withToken = randomBytes(32).toString('base64url')) =>
    app.inject({ method: 'POST', url: '/api/auth/password/reset', payload: { token: withToken, newPassword }, remoteAddress: client })
  const client = nextClient()
  t.same(await useUpTheMinute(client, reset), [401], 'the first 30 are answered (unknown links)')
  isRateLimited(t, await reset(client, token))
  t.equal((await post('/api/auth/login', { username: user.username, password: user.password })).statusCode, 200, 'the password is unchanged')
  t.equal((await reset(nextClient(), token)).statusCode, 204, 'the link still works from another client address')
})
