import t from 'tap'
import { eq } from 'drizzle-orm'
import { passkeys, sessions } from '../src/db/schema.js'
import { STRONG_PASSWORD } from './helpers/app.js'
import {
  CHROMIUM, hasChromium, launchChromium, newProfile, screenshot, signInThroughForm, startStack, textOf, waitForText, watchForPageErrors,
} from './helpers/e2e-browser.js'

// Run under the shared lock (Chromium): flock /tmp/heavy.lock npx tap test/e2e-passkeys.test.ts
const skip = hasChromium() ? false : `${CHROMIUM} is not installed (apt-get install chromium; .ci/run does it)`

t.test('passkeys in Chromium: add one on the account page, sign in with it from the cross-site frontend, and a cancel says so', { skip }, async (t) => {
  const { app, frontendUrl, apiOrigin } = await startStack(t)
  t.match(frontendUrl, /^http:\/\/localhost:/, 'the page on localhost')
  t.match(apiOrigin, /^http:\/\/127\.0\.0\.1:/, 'the API on another site')
  const browser = await launchChromium(t)
  const context = await newProfile(browser)
  const page = await context.newPage()
  const problems = watchForPageErrors(page)

  // Chromium's virtual authenticator: a platform authenticator (internal transport, CTAP2) that
  // keeps discoverable credentials and verifies its user (a fingerprint that always matches).
  const cdp = await context.newCDPSession(page)
  await cdp.send('WebAuthn.enable', { enableUI: false })
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  })

  const username = 'passkey_alice'
  const registered = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username, password: STRONG_PASSWORD } })
  t.equal(registered.statusCode, 201)
  const userId = registered.json().user.id as string

  await signInThroughForm(page, frontendUrl, username, STRONG_PASSWORD)
  await page.getByRole('link', { name: 'Account' }).click()
  const card = page.locator('#passkeys')
  await waitForText(card.getByRole('list', { name: 'Passkeys' }), 'No passkeys yet')
  await card.getByLabel('Name for the new passkey').fill('Test laptop')
  await card.getByRole('button', { name: 'Add a passkey' }).click()
  await waitForText(card.getByRole('list', { name: 'Passkeys' }), 'Test laptop')
  t.match(await textOf(page.getByRole('status')), /Passkey “Test laptop” added/)
  t.match(await textOf(card.locator('.passkey .task-meta')), /not used yet/)
  await screenshot(page, 'passkeys-added')
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId })
  t.equal(credentials.length, 1, 'the authenticator holds one credential')
  t.equal(credentials[0]?.isResidentCredential, true, 'a discoverable one (a passkey)')
  t.equal(credentials[0]?.rpId, 'localhost', 'for the frontend\'s site')
  const stored = await app.db.select({ name: passkeys.name, credentialId: passkeys.credentialId }).from(passkeys).where(eq(passkeys.userId, userId))
  t.same(stored.map((row) => row.name), ['Test laptop'])

  // Sign out, then in with the passkey alone: no username, no password.
  await page.locator('.who').getByRole('button', { name: 'Sign out' }).click()
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
  await page.getByRole('heading', { name: 'My tasks' }).waitFor()
  t.match(await textOf(page.locator('.who')), new RegExp(username))
  const methods = (await app.db.select({ method: sessions.method }).from(sessions).where(eq(sessions.userId, userId))).map((row) => row.method)
  t.same(methods.sort(), ['passkey', 'password'], 'the new session began with a passkey')

  // A person who cancels (here: the authenticator cannot verify them) is told so, and stays out.
  await page.locator('.who').getByRole('button', { name: 'Sign out' }).click()
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()
  await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false })
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
  t.match(await textOf(page.getByRole('alert')), /No passkey was used/)
  await screenshot(page, 'passkeys-cancelled')
  t.ok(await page.getByRole('heading', { name: 'Sign in' }).isVisible(), 'still on the sign-in page')

  // A browser without any passkey for the site says the same, and the password still works.
  await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: true })
  await cdp.send('WebAuthn.clearCredentials', { authenticatorId })
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
  await waitForText(page.getByRole('alert'), /No passkey was used/)
  await signInThroughForm(page, frontendUrl, username, STRONG_PASSWORD)

  // Remove it on the account page.
  await page.getByRole('link', { name: 'Account' }).click()
  await card.getByRole('button', { name: 'Remove Test laptop' }).click()
  await page.getByRole('button', { name: 'Remove passkey' }).click()
  await waitForText(card.getByRole('list', { name: 'Passkeys' }), 'No passkeys yet')
  t.equal((await app.db.select({ id: passkeys.id }).from(passkeys).where(eq(passkeys.userId, userId))).length, 0)
  t.same(problems, [], 'no uncaught errors or CSP refusals')
})
