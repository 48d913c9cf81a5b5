import t, { type Test } from 'tap'
import { eq } from 'drizzle-orm'
import { mailOutbox, users } from '../src/db/schema.js'
import { buildTestApp } from './helpers/app.js'
import { runCli } from './helpers/cli.js'
import { emailKit } from './helpers/email.js'
import { enrolTotp, passwordStep, roomInStep, totpCode, verifyCode } from './helpers/mfa.js'
import { addPasskey } from './helpers/passkeys.js'
import { linkIn, TestSmtpServer, tokenIn, type ReceivedMail } from './helpers/smtp.js'

// API.md: "Notifications to the verified address: password changed or reset, e-mail changed, second
// factor on or off, recovery codes regenerated or used, passkey added. They never carry a token."
// Each is checked as the user receives it: through the outbox, the sender and a real SMTP server.

const smtp = await TestSmtpServer.start()
t.teardown(() => smtp.stop())
// The per-IP limit would stop a file that signs up this many users from one address.
const app = await buildTestApp(t, { smtpUrl: smtp.url, rateLimitAllowList: ['127.0.0.1'] })
const { newAddress, post, userWithAddress, mailsTo } = emailKit(app, smtp)

const NEW_PASSWORD = 'another-Lantern-77-river'

interface Expected {
  subject: RegExp
  /** What happened, as the text says it. */
  text: RegExp
  /** Who made the change: a browser (the request's address) or an administrator. */
  by?: 'request' | 'administrator'
}

/**
 * Runs `change`, then checks the one mail it sent to `email`: what it says happened, who did it,
 * and that it carries no token (no link of any kind: a notification only tells).
 */
async function notified (t: Test, email: string, change: () => Promise<unknown>, expected: Expected): Promise<ReceivedMail> {
  const before = mailsTo(email).length
  await change()
  await smtp.waitFor(email, before + 1)
  await app.mailer.idle()
  const mails = mailsTo(email).slice(before)
  t.equal(mails.length, 1, 'one mail to the verified address')
  const mail = mails[0]!
  t.match(mail.subject, expected.subject, 'the subject says what happened')
  t.match(mail.text, expected.text, 'the text says what happened')
  if (expected.by === 'administrator') {
    t.match(mail.text, /by an administrator\./, 'says an administrator did it')
    t.notMatch(mail.text, /from the address/)
    t.match(mail.text, /If you did not ask for this: tell your administrator/)
  } else {
    t.match(mail.text, /from the address 127\.0\.0\.1 \(/, 'says from where')
    t.match(mail.text, /If this was not you: /, 'says what to do if it was not them')
  }
  t.throws(() => tokenIn(mail), 'no link with a token')
  t.throws(() => linkIn(mail))
  t.notMatch(mail.text, /token/i, 'no token in the text')
  t.notMatch(mail.html, /token|<a /i, 'no token and no link in the HTML')
  return mail
}

t.test('password changed: told at the verified address, not at one still waiting for its link', async (t) => {
  const user = await userWithAddress()
  const pending = newAddress()
  t.equal((await post('/api/auth/email', { email: pending, currentPassword: user.password }, user.cookies)).statusCode, 202)
  await smtp.waitFor(pending)
  await notified(t, user.email, async () => {
    const changed = await post('/api/auth/password', { currentPassword: user.password, newPassword: NEW_PASSWORD }, user.cookies)
    t.equal(changed.statusCode, 204)
  }, { subject: /^Tasks: your password was changed$/, text: /The password of your account was changed, on / })
  t.equal(mailsTo(pending).length, 1, 'the unverified address got its link and nothing else')
})

t.test('password reset: told once the link was used', async (t) => {
  const user = await userWithAddress()
  await post('/api/auth/password/forgot', { email: user.email })
  const token = tokenIn((await smtp.waitFor(user.email, 2))[1]!)
  await notified(t, user.email, async () => {
    t.equal((await post('/api/auth/password/reset', { token, newPassword: NEW_PASSWORD })).statusCode, 204)
  }, { subject: /^Tasks: your password was reset$/, text: /The password of your account was reset with a link sent to this address/ })
})

t.test('e-mail changed: the old address is told, the new one only gets its link', async (t) => {
  const user = await userWithAddress()
  const next = newAddress()
  await post('/api/auth/email', { email: next, currentPassword: user.password }, user.cookies)
  const token = tokenIn((await smtp.waitFor(next))[0]!)
  await notified(t, user.email, async () => {
    t.equal((await post('/api/auth/email/verify', { token })).statusCode, 200)
  }, { subject: /^Tasks: your e-mail address was changed$/, text: /The e-mail address of your account was changed: this address no longer receives/ })
  t.equal(mailsTo(next).length, 1)
})

t.test('second factor on, a recovery code used at sign-in, recovery codes regenerated, second factor off', async (t) => {
  const user = await userWithAddress()
  let enrolled: Awaited<ReturnType<typeof enrolTotp>> | undefined
  await notified(t, user.email, async () => { enrolled = await enrolTotp(app, user) },
    { subject: /^Tasks: two-step sign-in was turned on$/, text: /Two-step sign-in \(an authenticator app\) was turned on for your account/ })
  const { secret, recoveryCodes } = enrolled!

  await notified(t, user.email, async () => {
    const { cookies } = await passwordStep(app, user)
    t.equal((await verifyCode(app, cookies, { recoveryCode: recoveryCodes[0]! })).statusCode, 200, 'signed in with a recovery code')
  }, { subject: /^Tasks: a recovery code was used$/, text: /One of your recovery codes was used; it no longer works/ })

  // Enrolment used the previous step's code: this step's and the next one's are still free.
  await roomInStep()
  await notified(t, user.email, async () => {
    const regenerated = await post('/api/auth/mfa/recovery-codes', { currentPassword: user.password, code: totpCode(secret) }, user.cookies)
    t.equal(regenerated.statusCode, 200)
  }, { subject: /^Tasks: new recovery codes$/, text: /New recovery codes were made for your account; the old ones no longer work/ })

  await notified(t, user.email, async () => {
    const disabled = await post('/api/auth/mfa/totp/disable', { currentPassword: user.password, code: totpCode(secret, 1) }, user.cookies)
    t.equal(disabled.statusCode, 204)
  }, { subject: /^Tasks: two-step sign-in was turned off$/, text: /Two-step sign-in was turned off for your account/ })
})

t.test('a passkey added, and (beyond API.md\'s list) a passkey removed', async (t) => {
  const user = await userWithAddress()
  let added: Awaited<ReturnType<typeof addPasskey>> | undefined
  await notified(t, user.email, async () => { added = await addPasskey(app, user) },
    { subject: /^Tasks: a passkey was added$/, text: /A passkey was added to your account: it can now sign in without a password/ })
  await notified(t, user.email, async () => {
    const removed = await app.inject({ method: 'DELETE', url: `/api/auth/passkeys/${added!.passkey.id}`, cookies: user.cookies })
    t.equal(removed.statusCode, 204)
  }, { subject: /^Tasks: a passkey was removed$/, text: /A passkey was removed from your account: it can no longer sign in/ })
})

t.test('a first password set on an account without one (made by an identity provider) is told like a change', async (t) => {
  const user = await userWithAddress()
  // No route gives a provider-made account an address today (adding one asks for the password), so
  // the row is put in that state directly: an account with a verified address and no password.
  await app.db.update(users).set({ passwordHash: null }).where(eq(users.id, user.id))
  await notified(t, user.email, async () => {
    t.equal((await post('/api/auth/password/set', { newPassword: NEW_PASSWORD }, user.cookies)).statusCode, 204)
  }, { subject: /^Tasks: your password was changed$/, text: /The password of your account was changed, on / })
})

t.test('an administrator\'s reset-password and mfa-reset (npm run users) tell the user, as done by an administrator', async (t) => {
  const user = await userWithAddress()
  await enrolTotp(app, user)
  await smtp.waitFor(user.email, 2)
  // The shell of the server's host: the same mail settings and key as the server. The CLI only writes
  // the outbox row; this running server's sender finds it on its own (it looks every 5 s).
  const env = { NODE_ENV: 'test', DATA_DIR: 'memory://', SMTP_URL: smtp.url, ENCRYPTION_KEY: app.config.encryptionKey }
  await notified(t, user.email, async () => {
    const reset = await runCli(app.database, ['reset-password', user.username, '--password-stdin'], `${NEW_PASSWORD}\n`, env)
    t.equal(reset.code, 0, reset.err)
    t.match(reset.out, /; told by mail\n$/)
  }, { subject: /^Tasks: your password was changed$/, text: /The password of your account was changed, on /, by: 'administrator' })
  await notified(t, user.email, async () => {
    const mfaReset = await runCli(app.database, ['mfa-reset', user.username], '', env)
    t.equal(mfaReset.code, 0, mfaReset.err)
    t.match(mfaReset.out, /; told by mail\n$/)
  }, { subject: /^Tasks: two-step sign-in was turned off$/, text: /Two-step sign-in was turned off for your account/, by: 'administrator' })
})

t.test('the CLI mails only where the server would, and needs the key to seal the mail before it changes anything', async (t) => {
  const user = await userWithAddress()
  const outboxRows = async () => (await app.db.select({ id: mailOutbox.id }).from(mailOutbox).where(eq(mailOutbox.to, user.email))).length
  const rowsBefore = await outboxRows()
  const production = { NODE_ENV: 'production', DATA_DIR: 'memory://', CORS_ORIGINS: 'https://app.example.com' }

  const withoutMail = await runCli(app.database, ['reset-password', user.username, '--password-stdin'], `${NEW_PASSWORD}\n`, production)
  t.equal(withoutMail.code, 0, 'production without SMTP_URL: the e-mail features are off, the reset is done')
  t.notMatch(withoutMail.out, /told by mail/)
  t.equal(await outboxRows(), rowsBefore, 'and no mail is written')

  const noKey = await runCli(app.database, ['reset-password', user.username, '--password-stdin'], 'third-Harbour-19-stone\n', { ...production, SMTP_URL: smtp.url })
  t.equal(noKey.code, 2, 'production with SMTP_URL and no ENCRYPTION_KEY: a configuration error')
  t.match(noKey.err, /ENCRYPTION_KEY is required/)
  t.equal((await post('/api/auth/login', { username: user.username, password: NEW_PASSWORD })).statusCode, 200, 'the password is unchanged')
  t.equal(await outboxRows(), rowsBefore)
})
