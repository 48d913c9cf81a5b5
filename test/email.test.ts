import t from 'tap'
import { and, eq, sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { mailOutbox, oneTimeSecrets } from '../src/db/schema.js'
import { buildTestApp, cookiesFrom, LogCapture, signIn, STRONG_PASSWORD, uniqueName, type SignedIn } from './helpers/app.js'
import { emailKit } from './helpers/email.js'
import { enrolTotp, roomInStep, totpCode } from './helpers/mfa.js'
import { TestSmtpServer, tokenIn } from './helpers/smtp.js'

// One mail server, one app, one database for the file.
const smtp = await TestSmtpServer.start()
t.teardown(() => smtp.stop())
const logs = new LogCapture()
// The per-address limits stay on; the per-IP one would stop a file that signs up this many users.
const app = await buildTestApp(t, { smtpUrl: smtp.url, rateLimitAllowList: ['127.0.0.1'] }, { logs })

const { newAddress, post, userWithAddress, mailsTo } = emailKit(app, smtp)

async function expireSecretsOf (db: FastifyInstance['db'], userId: string) {
  await db.update(oneTimeSecrets).set({ expiresAt: sql`now() - interval '1 second'` }).where(eq(oneTimeSecrets.userId, userId))
}

t.test('register with an address: the mailed link makes it the account\'s verified address, once', async (t) => {
  const email = newAddress('Reg')
  const username = uniqueName()
  const registered = await post('/api/auth/register', { username, password: STRONG_PASSWORD, email })
  t.equal(registered.statusCode, 201)
  t.match(registered.json().user, { username, email: null, emailVerified: false }, 'no address until the link is used')
  const [mail] = await smtp.waitFor(email)
  t.match(mail!.subject, /confirm your e-mail address/)
  t.match(mail!.text, /http:\/\/localhost:4100\/#\/verify-email\?token=/)
  t.match(mail!.html, /<a href="http:\/\/localhost:4100\/#\/verify-email\?token=/)
  const token = tokenIn(mail!)
  const verified = await post('/api/auth/email/verify', { token })
  t.equal(verified.statusCode, 200)
  t.match(verified.json().user, { username, email, emailVerified: true })
  const again = await post('/api/auth/email/verify', { token })
  t.equal(again.statusCode, 401)
  t.equal(again.json().code, 'EMAIL_TOKEN_INVALID', 'a used link is refused')
  const [row] = await app.db.select({ hash: oneTimeSecrets.secretHash }).from(oneTimeSecrets).where(eq(oneTimeSecrets.kind, 'email_verification'))
  t.not(row?.hash, token, 'only a hash of the token is stored')
})

t.test('a superseded or expired verification link is refused', async (t) => {
  const user = await signIn(app)
  const first = newAddress()
  const second = newAddress()
  await post('/api/auth/email', { email: first, currentPassword: user.password }, user.cookies)
  await post('/api/auth/email', { email: second, currentPassword: user.password }, user.cookies)
  const [older] = await smtp.waitFor(first)
  const [newer] = await smtp.waitFor(second)
  const refused = await post('/api/auth/email/verify', { token: tokenIn(older!) })
  t.equal(refused.json().code, 'EMAIL_TOKEN_INVALID', 'the newer link voids the older')
  await expireSecretsOf(app.db, user.id)
  const expired = await post('/api/auth/email/verify', { token: tokenIn(newer!) })
  t.equal(expired.json().code, 'EMAIL_TOKEN_INVALID', 'an expired link is refused')
  const me = await app.inject({ method: 'GET', url: '/api/auth/me', cookies: user.cookies })
  t.match(me.json().user, { email: null, emailVerified: false }, 'refusals change nothing')
})

t.test('changing the address needs the password, and tells the old address once the new one is verified', async (t) => {
  const user = await userWithAddress()
  const next = newAddress()
  const wrong = await post('/api/auth/email', { email: next, currentPassword: 'not-the-password-1' }, user.cookies)
  t.equal(wrong.statusCode, 401)
  t.equal(wrong.json().code, 'BAD_CREDENTIALS')
  t.equal((await post('/api/auth/email', { email: next, currentPassword: user.password })).statusCode, 401, 'signed in only')
  t.equal((await post('/api/auth/email', { email: next, currentPassword: user.password }, user.cookies)).statusCode, 202)
  const [mail] = await smtp.waitFor(next)
  const me = await app.inject({ method: 'GET', url: '/api/auth/me', cookies: user.cookies })
  t.equal(me.json().user.email, user.email, 'the old address stays until the new one is verified')
  const verified = await post('/api/auth/email/verify', { token: tokenIn(mail!) })
  t.equal(verified.json().user.email, next)
  const [told] = (await smtp.waitFor(user.email, 2)).slice(1)
  t.match(told!.subject, /e-mail address was changed/)
  t.notMatch(told!.text, /token=/, 'a notification carries no token')
})

t.test('an address in use is never revealed: the request is accepted and its owner is told', async (t) => {
  const owner = await userWithAddress()
  const other = await signIn(app)
  const before = mailsTo(owner.email).length
  const answer = await post('/api/auth/email', { email: owner.email.toUpperCase(), currentPassword: other.password }, other.cookies)
  t.equal(answer.statusCode, 202)
  t.same(answer.json(), {})
  const mails = await smtp.waitFor(owner.email, before + 1)
  const mail = mails.at(-1)!
  t.match(mail.subject, /already registered/)
  t.notMatch(mail.text, /token=/)
  const registered = await post('/api/auth/register', { username: uniqueName(), password: STRONG_PASSWORD, email: owner.email })
  t.equal(registered.statusCode, 201, 'register with a taken address: accepted like any other')
  await smtp.waitFor(owner.email, before + 2)
})

t.test('forgot answers the same for an unknown, an unverified and a known address; only the known one gets a mail', async (t) => {
  const known = await userWithAddress()
  const unverified = newAddress()
  const pending = await signIn(app)
  await post('/api/auth/email', { email: unverified, currentPassword: pending.password }, pending.cookies)
  await smtp.waitFor(unverified)
  const unknown = newAddress()
  const answers = []
  for (const email of [unknown, unverified, known.email]) {
    const response = await post('/api/auth/password/forgot', { email })
    answers.push({ status: response.statusCode, body: response.body, type: response.headers['content-type'] })
  }
  t.same(answers[0], answers[1])
  t.same(answers[1], answers[2])
  t.equal(answers[0]!.status, 202)
  await app.mailer.idle()
  const [mail] = (await smtp.waitFor(known.email, 2)).slice(1)
  t.match(mail!.subject, /reset your password/)
  t.equal(mailsTo(unknown).length, 0, 'nothing to an unknown address')
  t.equal(mailsTo(unverified).length, 1, 'nothing more to an unverified one than its verification link')
  const kept = await app.db.select({ id: mailOutbox.id }).from(mailOutbox).where(eq(mailOutbox.to, unknown))
  t.equal(kept.length, 0, 'nothing is kept for an unknown address')
})

t.test('a reset link sets a new password and ends every session; it works once', async (t) => {
  const user = await userWithAddress()
  const other = await post('/api/auth/login', { username: user.username, password: user.password })
  const otherCookies = cookiesFrom(other)
  await post('/api/auth/password/forgot', { email: user.email })
  const mail = (await smtp.waitFor(user.email, 2))[1]!
  const token = tokenIn(mail)
  const weak = await post('/api/auth/password/reset', { token, newPassword: 'password123' })
  t.equal(weak.json().code, 'PASSWORD_TOO_COMMON', 'a common password is refused as at register')
  const newPassword = 'another-Lantern-77-river'
  const both = await Promise.all([
    post('/api/auth/password/reset', { token, newPassword }),
    post('/api/auth/password/reset', { token, newPassword }),
  ])
  t.same(both.map((response) => response.statusCode).sort(), [204, 401], 'two uses at once: exactly one wins')
  t.equal(both.find((response) => response.statusCode === 401)!.json().code, 'RESET_TOKEN_INVALID')
  for (const cookies of [user.cookies, otherCookies]) {
    const me = await app.inject({ method: 'GET', url: '/api/auth/me', cookies })
    t.equal(me.statusCode, 401, 'every session ended')
  }
  t.equal((await post('/api/auth/login', { username: user.username, password: user.password })).statusCode, 401, 'old password refused')
  t.equal((await post('/api/auth/login', { username: user.username, password: newPassword })).statusCode, 200, 'new password works')
  const told = (await smtp.waitFor(user.email, 3))[2]!
  t.match(told.subject, /password was reset/)
  t.notMatch(told.text, /token=/)
})

t.test('superseded and expired reset links are refused', async (t) => {
  const user = await userWithAddress()
  await post('/api/auth/password/forgot', { email: user.email })
  const [older] = (await smtp.waitFor(user.email, 2)).slice(1)
  await post('/api/auth/password/forgot', { email: user.email })
  const [newer] = (await smtp.waitFor(user.email, 3)).slice(2)
  const newPassword = 'another-Lantern-77-river'
  const superseded = await post('/api/auth/password/reset', { token: tokenIn(older!), newPassword })
  t.equal(superseded.json().code, 'RESET_TOKEN_INVALID')
  await app.db.update(oneTimeSecrets).set({ expiresAt: sql`now() - interval '1 second'` })
    .where(and(eq(oneTimeSecrets.userId, user.id), eq(oneTimeSecrets.kind, 'password_reset')))
  const expired = await post('/api/auth/password/reset', { token: tokenIn(newer!), newPassword })
  t.equal(expired.json().code, 'RESET_TOKEN_INVALID')
  t.equal((await post('/api/auth/login', { username: user.username, password: user.password })).statusCode, 200, 'the password is unchanged')
})

t.test('a reset never skips the second factor', async (t) => {
  const user = await userWithAddress()
  const { secret, recoveryCodes } = await enrolTotp(app, user)
  await smtp.waitFor(user.email, 2) // "two-step sign-in was turned on"
  t.match(mailsTo(user.email)[1]!.subject, /two-step sign-in was turned on/)
  await post('/api/auth/password/forgot', { email: user.email })
  const token = tokenIn((await smtp.waitFor(user.email, 3))[2]!)
  const newPassword = 'another-Lantern-77-river'
  const without = await post('/api/auth/password/reset', { token, newPassword })
  t.equal(without.statusCode, 401)
  t.equal(without.json().code, 'MFA_INVALID', 'no code: refused')
  const wrong = await post('/api/auth/password/reset', { token, newPassword, code: totpCode(secret) === '000000' ? '111111' : '000000' })
  t.equal(wrong.json().code, 'MFA_INVALID', 'a wrong code: refused')
  await roomInStep()
  const right = await post('/api/auth/password/reset', { token, newPassword, code: totpCode(secret) })
  t.equal(right.statusCode, 204, 'with the code: reset')
  // A recovery code works too, on a fresh link.
  await post('/api/auth/password/forgot', { email: user.email })
  const mails = await smtp.waitFor(user.email, 5)
  const second = tokenIn(mails.filter((mail) => /reset your password/.test(mail.subject)).at(-1)!)
  const byRecovery = await post('/api/auth/password/reset', { token: second, newPassword: 'third-Harbour-19-stone', code: recoveryCodes[0]! })
  t.equal(byRecovery.statusCode, 204)
})

t.test('forgot is limited per target address, known or not', async (t) => {
  const email = newAddress()
  const statuses = []
  for (let i = 0; i < 6; i++) statuses.push((await post('/api/auth/password/forgot', { email })).statusCode)
  t.same(statuses, [202, 202, 202, 202, 202, 429])
})

t.test('bad input is a 400 that changes nothing', async (t) => {
  for (const payload of [{}, { email: 'not-an-address' }, { email: 'a@b.c', extra: 1 }, { email: 'a\u0000@b.c' }]) {
    const response = await post('/api/auth/password/forgot', payload)
    t.equal(response.statusCode, 400, JSON.stringify(payload))
  }
  t.equal((await post('/api/auth/password/reset', { token: 'x'.repeat(43), newPassword: 'short' })).statusCode, 400)
  t.equal((await post('/api/auth/email/verify', { token: 'not a token!' })).statusCode, 400)
  t.equal((await post('/api/auth/email/verify', { token: 'A'.repeat(43) })).json().code, 'EMAIL_TOKEN_INVALID')
})

t.test('no token or address reaches the info log', async (t) => {
  await app.mailer.idle()
  const tokens = smtp.received.flatMap((mail) => /token=([A-Za-z0-9_-]+)/.exec(mail.text)?.[1] ?? [])
  t.ok(tokens.length > 5)
  for (const token of tokens) t.notOk(logs.text.includes(token), 'no token in the log')
  for (const address of new Set(smtp.received.map((mail) => mail.to))) t.notOk(logs.text.toLowerCase().includes(address), `no address in the log (${address.slice(0, 6)}…)`)
  const rows = await app.db.select({ text: mailOutbox.text }).from(mailOutbox)
  for (const token of tokens) t.notOk(rows.some((row) => row.text.includes(token)), 'no token in clear in the outbox')
})

t.test('the user JSON has email and emailVerified: at register, and from /me before and after the link', async (t) => {
  const email = newAddress()
  const username = uniqueName()
  const registered = await post('/api/auth/register', { username, password: STRONG_PASSWORD, email })
  t.equal(registered.statusCode, 201)
  t.equal(registered.json().user.email, null, 'register: no address until the link is used')
  t.equal(registered.json().user.emailVerified, false, 'register: not verified')
  const cookies = cookiesFrom(await post('/api/auth/login', { username, password: STRONG_PASSWORD }))
  const me = async () => (await app.inject({ method: 'GET', url: '/api/auth/me', cookies })).json().user
  const before = await me()
  t.equal(before.email, null, '/me before the link')
  t.equal(before.emailVerified, false)
  await post('/api/auth/email/verify', { token: tokenIn((await smtp.waitFor(email))[0]!) })
  const after = await me()
  t.equal(after.email, email, '/me after the link: the address')
  t.equal(after.emailVerified, true, '/me after the link: verified')
})

t.test('two forgot requests at once leave one live link: the newer voids the older', async (t) => {
  const user = await userWithAddress()
  await Promise.all([post('/api/auth/password/forgot', { email: user.email }), post('/api/auth/password/forgot', { email: user.email })])
  await smtp.waitFor(user.email, 3)
  const live = await app.db.select({ hash: oneTimeSecrets.secretHash }).from(oneTimeSecrets)
    .where(and(eq(oneTimeSecrets.userId, user.id), eq(oneTimeSecrets.kind, 'password_reset'), sql`${oneTimeSecrets.usedAt} is null`))
  t.equal(live.length, 1)
})

t.test('asking to change to an address in use voids the earlier link just as a free address does (no oracle)', async (t) => {
  const owner = await userWithAddress()
  const outcomes: Record<string, number> = {}
  for (const [label, target] of [['free', newAddress('free')], ['taken', owner.email.toUpperCase()]] as const) {
    const user = await signIn(app)
    const first = newAddress('first')
    t.equal((await post('/api/auth/email', { email: first, currentPassword: user.password }, user.cookies)).statusCode, 202)
    const [earlier] = await smtp.waitFor(first)
    t.equal((await post('/api/auth/email', { email: target, currentPassword: user.password }, user.cookies)).statusCode, 202)
    outcomes[label] = (await post('/api/auth/email/verify', { token: tokenIn(earlier!) })).statusCode
  }
  t.same(outcomes, { free: 401, taken: 401 }, 'the earlier link is void either way')
})

t.test("over the address's limit, the owner's browser (device cookie) still gets a link; another browser does not", async (t) => {
  const owner = await userWithAddress()
  const stranger = await signIn(app)
  const deviceOf = (user: SignedIn) => Object.fromEntries(Object.entries(user.cookies).filter(([name]) => name.endsWith('device')))
  t.ok(Object.keys(deviceOf(owner)).length === 1, 'the sign-in left a device cookie')
  const before = mailsTo(owner.email).length
  for (let i = 0; i < 5; i++) t.equal((await post('/api/auth/password/forgot', { email: owner.email })).statusCode, 202)
  const limited = await post('/api/auth/password/forgot', { email: owner.email })
  t.equal(limited.statusCode, 429, 'a stranger without a device cookie is stopped')
  t.ok(limited.headers['retry-after'])
  await smtp.waitFor(owner.email, before + 5)
  // The owner's browser first: its link must come (a check the other way round could not fail).
  t.equal((await post('/api/auth/password/forgot', { email: owner.email }, deviceOf(owner))).statusCode, 202)
  await smtp.waitFor(owner.email, before + 6)
  const strangers = await post('/api/auth/password/forgot', { email: owner.email }, deviceOf(stranger))
  t.equal(strangers.statusCode, 202, "another account's device cookie gets the same answer…")
  // Then the owner once more: its link arriving marks the stranger's request as handled before it.
  t.equal((await post('/api/auth/password/forgot', { email: owner.email }, deviceOf(owner))).statusCode, 202)
  await smtp.waitFor(owner.email, before + 7)
  await app.mailer.idle()
  t.equal(mailsTo(owner.email).length, before + 7, "…but sends nothing: only the owner's browser got links")
})

t.test('asking to change to one address is limited per that address, whoever asks (no mailbox flooding)', async (t) => {
  const target = newAddress('flooded')
  const statuses = []
  for (let i = 0; i < 6; i++) {
    const user = await signIn(app)
    statuses.push((await post('/api/auth/email', { email: target, currentPassword: user.password }, user.cookies)).statusCode)
  }
  t.same(statuses, [202, 202, 202, 202, 202, 429], 'five mails to it an hour, from any accounts')
  const user = await signIn(app)
  t.equal((await post('/api/auth/email', { email: newAddress('other'), currentPassword: user.password }, user.cookies)).statusCode, 202, 'another address is not affected')
  await app.mailer.idle()
  t.equal(mailsTo(target).length, 5)
})
