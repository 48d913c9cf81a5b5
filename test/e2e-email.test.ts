import t from 'tap'
import { and, eq, isNull } from 'drizzle-orm'
import { oneTimeSecrets } from '../src/db/schema.js'
import { STRONG_PASSWORD } from './helpers/app.js'
import {
  CHROMIUM, hasChromium, launchChromium, newProfile, screenshot, signInThroughForm, startStack, textOf, watchForPageErrors,
} from './helpers/e2e-browser.js'
import { linkIn, TestSmtpServer } from './helpers/smtp.js'
import { toolSkip } from './helpers/tools.js'

// Run under the shared lock (Chromium): flock /tmp/heavy.lock npx tap test/e2e-email.test.ts
const skip = toolSkip(t, CHROMIUM, hasChromium(), 'apt-get install chromium; .ci/run does it')

t.test('forgot password in Chromium: mail, reset page, sign in with the new password; the old session is gone', { skip }, async (t) => {
  const smtp = await TestSmtpServer.start()
  t.teardown(() => smtp.stop())
  const { app, frontendUrl } = await startStack(t, { smtpUrl: smtp.url })
  const browser = await launchChromium(t)
  // The mailed links name APP_URL; the test's frontend listens on a port of its own.
  const opened = (link: string) => `${frontendUrl}${link.slice(link.indexOf('#'))}`
  const username = 'mail_alice'
  const email = 'alice@example.test'

  // An account with an address, confirmed through the link's page.
  const registered = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username, password: STRONG_PASSWORD, email } })
  t.equal(registered.statusCode, 201)
  const page = await (await newProfile(browser)).newPage()
  const problems = watchForPageErrors(page)
  await page.goto(opened(linkIn((await smtp.waitFor(email))[0]!)))
  await page.getByRole('heading', { name: 'Confirm your e-mail address' }).waitFor()
  t.match(page.url(), /#\/verify-email$/, 'the token is dropped from the address (and the history) once read')
  await page.getByRole('button', { name: 'Confirm this address' }).click()
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()
  t.match(await textOf(page.getByRole('status')), /alice@example\.test is confirmed/)

  // The session that the reset must end, in another browser profile.
  const oldPage = await (await newProfile(browser)).newPage()
  await signInThroughForm(oldPage, frontendUrl, username, STRONG_PASSWORD)

  // Another account's link, opened in a browser signed in as Alice: the address is Bob's; the page
  // stays Alice's.
  const bobEmail = 'bob@example.test'
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username: 'mail_bob', password: STRONG_PASSWORD, email: bobEmail } })).statusCode, 201)
  await oldPage.goto(opened(linkIn((await smtp.waitFor(bobEmail))[0]!)))
  await oldPage.getByRole('button', { name: 'Confirm this address' }).click()
  t.match(await textOf(oldPage.getByRole('status')), /bob@example\.test is confirmed for the account mail_bob\. You are still signed in as mail_alice/)
  t.equal(await textOf(oldPage.locator('.who-name strong')), username, 'the header still names Alice')

  // Forgot password, from the sign-in page.
  await page.getByRole('link', { name: 'Forgot password?' }).click()
  await page.getByRole('heading', { name: 'Forgot your password?' }).waitFor()
  await page.getByLabel('E-mail address').fill(email)
  await page.getByRole('button', { name: 'Send a reset link' }).click()
  t.match(await textOf(page.getByRole('status')), /If an account has this verified address/)
  const link = linkIn((await smtp.waitFor(email, 2))[1]!)

  // Opening the link changes nothing (a mail scanner does as much); the button does.
  await page.goto(opened(link))
  await page.getByRole('heading', { name: 'Choose a new password' }).waitFor()
  t.match(page.url(), /#\/reset-password$/, 'the reset token is dropped from the address too')
  const live = await app.db.select().from(oneTimeSecrets).where(and(eq(oneTimeSecrets.kind, 'password_reset'), isNull(oneTimeSecrets.usedAt)))
  t.equal(live.length, 1, 'the link is still unused after the page loaded')
  await screenshot(page, 'email-reset-page')
  const newPassword = 'another-Lantern-77-river'
  await page.getByLabel('New password', { exact: true }).fill(newPassword)
  await page.getByLabel('Repeat new password').fill(newPassword)
  await page.getByRole('button', { name: 'Set the new password' }).click()
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()
  t.match(await textOf(page.getByRole('status')), /password was changed/)
  await signInThroughForm(page, frontendUrl, username, newPassword)

  // The old session is over: its next request is refused and the page asks to sign in.
  await oldPage.reload()
  await oldPage.getByRole('heading', { name: 'Sign in' }).waitFor()
  t.pass('the old session is gone')

  // The used link again: a clear message, nothing changed.
  await page.goto(opened(link))
  await page.getByRole('heading', { name: 'Choose a new password' }).waitFor()
  await page.getByLabel('New password', { exact: true }).fill('third-Harbour-19-stone')
  await page.getByLabel('Repeat new password').fill('third-Harbour-19-stone')
  await page.getByRole('button', { name: 'Set the new password' }).click()
  t.match(await textOf(page.locator('.form-error')), /expired, was already used/)
  t.same(problems, [], 'no uncaught errors or CSP refusals')
})
