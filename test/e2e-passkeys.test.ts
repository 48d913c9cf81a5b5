import t from 'tap'
import { eq } from 'drizzle-orm'
import { passkeys, sessions } from '../src/db/schema.js'
import { STRONG_PASSWORD, testConfig } from './helpers/app.js'
import {
  CHROMIUM, hasChromium, launchChromium, newProfile, screenshot, signInThroughForm, startStack, textOf, waitForText, watchForPageErrors,
} from './helpers/e2e-browser.js'
import { toolSkip } from './helpers/tools.js'

// Run under the shared lock (Chromium): flock /tmp/heavy.lock npx tap test/e2e-passkeys.test.ts
const skip = toolSkip(t, CHROMIUM, hasChromium(), 'apt-get install chromium; .ci/run does it')

t.test('passkeys in Chromium: add one on the account page, sign in with it from the cross-site frontend, and a cancel says so', { skip }, async (t) => {
  // The relying party as the config derives it from FRONTEND_PORT alone (no WEBAUTHN_* set), in
  // place of startStack's explicit origins: a default that missed the page would fail here.
  const { app, frontendUrl, apiOrigin, seen } = await startStack(t, {}, async ({ frontendPort }) => {
    const derived = testConfig({}, { FRONTEND_PORT: String(frontendPort) })
    return { webauthnRpId: derived.webauthnRpId, webauthnOrigins: derived.webauthnOrigins }
  })
  t.same(app.config.webauthnOrigins, [new URL(frontendUrl).origin], 'the default origins: the page on localhost, not 127.0.0.1 (an IP address is never an RP id)')
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

  const signOut = async () => {
    await page.locator('.who').getByRole('button', { name: 'Sign out' }).click()
    await page.getByRole('heading', { name: 'Sign in' }).waitFor()
  }
  const optionsRequests = (from: number) => seen.slice(from).filter((request) => request.path === '/api/auth/passkeys/login/options' && request.status === 200).length
  const untilOptionsRequested = async (from: number) => {
    const deadline = Date.now() + 10_000
    while (optionsRequests(from) === 0) {
      if (Date.now() > deadline) throw new Error('the autofill request did not start')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  const passkeySessions = async () => (await app.db.select({ method: sessions.method }).from(sessions).where(eq(sessions.userId, userId)))
    .filter((row) => row.method === 'passkey').length

  // Sign out, then in with the passkey alone (no username, no password), by the button.
  await signOut()
  let from = seen.length
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
  await page.getByRole('heading', { name: 'My tasks' }).waitFor()
  t.match(await textOf(page.locator('.who')), new RegExp(username))
  t.equal(await passkeySessions(), 1, 'the new session began with a passkey')

  // Autofill (conditional mediation), where the browser offers it: focusing the username field asks
  // for a challenge (a page only looked at asks nothing), and the virtual authenticator, like a
  // person picking the passkey from the list, signs in.
  const autofill = await page.evaluate(async () => await globalThis.PublicKeyCredential?.isConditionalMediationAvailable?.() === true)
  t.comment(`conditional mediation (autofill) available: ${autofill}`)
  await signOut()
  from = seen.length
  t.equal(optionsRequests(from), 0, 'the sign-in page asks for no challenge until the form is used')
  if (autofill) {
    await page.getByLabel('Username').focus()
    await page.getByRole('heading', { name: 'My tasks' }).waitFor()
    t.equal(await passkeySessions(), 2, 'signed in from the autofill')
    await signOut()
  }

  // A person who cancels (here: the authenticator cannot verify them) is told so, and stays out.
  await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false })
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
  t.match(await textOf(page.getByRole('alert')), /No passkey was used/)
  await screenshot(page, 'passkeys-cancelled')
  t.ok(await page.getByRole('heading', { name: 'Sign in' }).isVisible(), 'still on the sign-in page')

  // A browser without any passkey for the site says the same, and the password still works. With
  // an autofill request waiting, the button aborts it first rather than being blocked by it.
  await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: true })
  await cdp.send('WebAuthn.clearCredentials', { authenticatorId })
  await page.goto(`${frontendUrl}#/sign-in`)
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()
  from = seen.length
  if (autofill) {
    await page.getByLabel('Username').focus()
    await untilOptionsRequested(from)
  }
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
