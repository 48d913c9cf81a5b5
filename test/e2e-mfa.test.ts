import t from 'tap'
import { eq } from 'drizzle-orm'
import { sessions } from '../src/db/schema.js'
import { STRONG_PASSWORD } from './helpers/app.js'
import {
  CHROMIUM, hasChromium, launchChromium, newProfile, screenshot, startStack, textOf, waitForText, watchForPageErrors,
} from './helpers/e2e-browser.js'
import { toolSkip } from './helpers/tools.js'
import { roomInStep, totpCode } from './helpers/mfa.js'

// Run under the shared lock (fixed ports, Chromium): flock /tmp/heavy.lock npx tap test/e2e-mfa.test.ts
const skip = toolSkip(t, CHROMIUM, hasChromium(), 'apt-get install chromium; .ci/run does it')

t.test('two-step sign-in in Chromium: enrol from the page, then sign in with a code and with a recovery code', { skip }, async (t) => {
  const { app, frontendUrl } = await startStack(t)
  const browser = await launchChromium(t)
  const page = await (await newProfile(browser)).newPage()
  const problems = watchForPageErrors(page)
  const username = 'mfa_alice'
  const registered = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username, password: STRONG_PASSWORD } })
  t.equal(registered.statusCode, 201)
  const userId = registered.json().user.id as string

  const signInWithPassword = async () => {
    await page.goto(`${frontendUrl}#/sign-in`)
    await page.getByRole('heading', { name: 'Sign in' }).waitFor()
    await page.getByLabel('Username').fill(username)
    await page.getByLabel('Password').fill(STRONG_PASSWORD)
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  }
  const signOut = async () => {
    await page.locator('.who').getByRole('button', { name: 'Sign out' }).click()
    await page.getByRole('heading', { name: 'Sign in' }).waitFor()
  }

  await signInWithPassword()
  await page.getByRole('heading', { name: 'My tasks' }).waitFor()

  // Enrol: the secret is read off the page, as a person would type it into their app.
  await page.getByRole('link', { name: 'Account' }).click()
  const card = page.locator('#two-step')
  t.match(await textOf(card.locator('.mfa-state')), /Status: Off/)
  await card.getByLabel('Current password').fill(STRONG_PASSWORD)
  await card.getByRole('button', { name: 'Set up two-step sign-in' }).click()
  const secret = await textOf(card.getByTestId('totp-secret'))
  t.match(secret, /^[A-Z2-7]{32}$/)
  t.ok(await card.getByRole('img', { name: 'QR code for your authenticator app' }).isVisible(), 'a QR code to scan')
  await screenshot(page, 'mfa-enrol')
  await roomInStep()
  await card.getByLabel('Code shown by the app').fill(totpCode(secret, -1))
  await card.getByRole('button', { name: 'Turn on' }).click()
  const codes = card.getByRole('list', { name: 'Recovery codes' }).getByRole('listitem')
  await codes.first().waitFor()
  const recoveryCodes = (await codes.allInnerTexts()).map((code) => code.trim())
  t.equal(recoveryCodes.length, 10, 'ten recovery codes, shown once')
  await screenshot(page, 'mfa-recovery-codes')
  await card.getByRole('button', { name: 'I have saved them' }).click()
  t.match(await waitForText(card.locator('.mfa-state'), 'On'), /Status: On/)
  t.match(await textOf(card.locator('.recovery-left')), /10 recovery codes left/)

  // Sign out, sign in with a code from the app.
  await signOut()
  await signInWithPassword()
  await page.getByRole('heading', { name: 'Two-step sign-in' }).waitFor()
  await screenshot(page, 'mfa-code-step')
  await roomInStep()
  await page.getByLabel('Code from your authenticator app').fill(totpCode(secret))
  await page.getByRole('button', { name: 'Verify' }).click()
  await page.getByRole('heading', { name: 'My tasks' }).waitFor()

  // Sign out, sign in with a recovery code.
  await signOut()
  await signInWithPassword()
  await page.getByRole('heading', { name: 'Two-step sign-in' }).waitFor()
  await page.getByRole('button', { name: 'Use a recovery code instead' }).click()
  await page.getByLabel('Recovery code').fill(recoveryCodes[0]!)
  await page.getByRole('button', { name: 'Verify' }).click()
  await page.getByRole('heading', { name: 'My tasks' }).waitFor()
  t.match(await textOf(page.getByRole('status')), /recovery code/)

  const methods = (await app.db.select({ method: sessions.method }).from(sessions).where(eq(sessions.userId, userId))).map((row) => row.method)
  t.same(methods.sort(), ['password', 'password+totp', 'recovery_code'], 'each session says how it began')
  t.same(problems, [], 'no uncaught errors or CSP refusals')
})
