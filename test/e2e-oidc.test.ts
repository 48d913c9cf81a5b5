import t from 'tap'
import { eq } from 'drizzle-orm'
import { sessions, users } from '../src/db/schema.js'
import {
  CHROMIUM, hasChromium, launchChromium, newProfile, screenshot, signInThroughForm, startStack, textOf, watchForPageErrors,
} from './helpers/e2e-browser.js'
import { signInAtProvider, startOidcProvider } from './helpers/oidc-provider.js'
import { cookiesFrom, STRONG_PASSWORD } from './helpers/app.js'
import { toolSkip } from './helpers/tools.js'

// Run under the shared lock (Chromium): flock /tmp/heavy.lock npx tap test/e2e-oidc.test.ts
const skip = toolSkip(t, CHROMIUM, hasChromium(), 'apt-get install chromium; .ci/run does it')

t.test('sign-in with an identity provider in Chromium, cross-site: frontend on localhost, API and provider on 127.0.0.1', { skip }, async (t) => {
  let providerOrigin = ''
  const { app, frontendUrl, apiOrigin } = await startStack(t, {}, async ({ apiPort, frontendPort }) => {
    const apiOrigin = `http://127.0.0.1:${apiPort}`
    const provider = await startOidcProvider(t, {
      accounts: {
        zoe: { preferred_username: 'zoe', email: 'zoe@idp.example', name: 'Zoe Example' },
        'bob-at-idp': { email: 'bob@idp.example' },
        mallory: { preferred_username: 'mallory' },
      },
      redirectUris: [`${apiOrigin}/api/auth/oidc/test/callback`],
    })
    providerOrigin = provider.issuer
    return {
      publicOrigins: [apiOrigin],
      appUrl: `http://localhost:${frontendPort}`,
      oidcProviders: [{ id: 'test', name: 'Test IdP', issuer: provider.issuer, clientId: provider.clientId, clientSecret: provider.clientSecret }],
    }
  })
  t.not(new URL(frontendUrl).hostname, new URL(apiOrigin).hostname, 'the frontend is on another site than the API')
  t.not(new URL(providerOrigin).port, new URL(apiOrigin).port, 'the provider has its own port')

  const browser = await launchChromium(t)
  const page = await (await newProfile(browser)).newPage()
  const problems = watchForPageErrors(page)

  await page.goto(`${frontendUrl}#/sign-in`)
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()
  await page.getByRole('button', { name: 'Sign in with Test IdP' }).click()

  // At the provider (oidc-provider's development pages): any password signs in as the login typed.
  await page.waitForURL((url) => url.origin === providerOrigin)
  await page.locator('input[name="login"]').fill('zoe')
  await page.locator('input[name="password"]').fill('whatever the provider accepts')
  await screenshot(page, 'oidc-provider-login')
  await page.getByRole('button', { name: /sign-in/i }).click()
  await page.getByRole('button', { name: 'Continue' }).click()

  // Back on the frontend, signed in by the exchange (the callback itself set no session cookie).
  await page.getByRole('heading', { name: 'My tasks' }).waitFor()
  t.equal(await textOf(page.locator('.who-name strong')), 'zoe')
  t.notMatch(page.url(), /code=/, 'the one-time code is gone from the address')
  await screenshot(page, 'oidc-signed-in')
  const [zoe] = await app.db.select({ id: users.id }).from(users).where(eq(users.username, 'zoe'))
  t.ok(zoe, 'the account was made on the first sign-in')
  const [session] = await app.db.select({ method: sessions.method }).from(sessions).where(eq(sessions.userId, zoe!.id))
  t.equal(session?.method, 'oidc')

  await page.reload()
  await page.getByRole('heading', { name: 'My tasks' }).waitFor()
  t.equal(await textOf(page.locator('.who-name strong')), 'zoe', 'a reload stays signed in: the cookies are in the frontend\'s partition')

  // The account page lists the identity.
  await page.getByRole('link', { name: 'Account' }).click()
  const card = page.locator('#identities')
  await card.getByRole('list', { name: 'Linked identities' }).waitFor()
  t.match(await textOf(card), /zoe@idp\.example/)
  t.ok(await card.getByRole('form', { name: 'Set a password' }).isVisible(), 'an account without a password is offered one')

  await page.locator('.who').getByRole('button', { name: 'Sign out' }).click()
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()
  await page.reload()
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()

  // Login CSRF: an attacker finishes a sign-in with their own provider account (over HTTP here) and
  // sends the landing URL to this browser. The page started no sign-in, so it does not use the code.
  const attackerStart = await app.inject({ method: 'GET', url: '/api/auth/oidc/test/start' })
  const attackerBack = await signInAtProvider(attackerStart.headers.location as string, 'mallory', `${apiOrigin}/api/auth/oidc/test/callback`)
  const attackerCallback = await app.inject({ method: 'GET', url: attackerBack.pathname + attackerBack.search, cookies: cookiesFrom(attackerStart) })
  const plantedCode = new URLSearchParams(String(attackerCallback.headers.location).split('#/oidc?')[1]).get('code')!
  await page.goto(`${frontendUrl}#/oidc?code=${plantedCode}`)
  await page.getByText('This sign-in was not started in this browser').waitFor()
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()
  t.equal(await page.locator('.who').count(), 0, 'a planted code signs this browser in to nobody')
  const unused = await app.inject({ method: 'POST', url: '/api/auth/oidc/exchange', payload: { code: plantedCode } })
  t.equal(unused.statusCode, 200, 'the page did not even spend it')
  t.equal(unused.json().user.username, 'mallory')

  // Linking from the Account page: a password account, a fresh browser profile (no provider session).
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username: 'bob', password: STRONG_PASSWORD } })).statusCode, 201)
  const bobPage = await (await newProfile(browser)).newPage()
  const bobProblems = watchForPageErrors(bobPage)
  await signInThroughForm(bobPage, frontendUrl, 'bob', STRONG_PASSWORD)
  await bobPage.getByRole('link', { name: 'Account' }).click()
  await bobPage.locator('#identities').getByRole('button', { name: 'Link Test IdP' }).click()
  await bobPage.waitForURL((url) => url.origin === providerOrigin)
  await bobPage.locator('input[name="login"]').fill('bob-at-idp')
  await bobPage.locator('input[name="password"]').fill('whatever the provider accepts')
  await bobPage.getByRole('button', { name: /sign-in/i }).click()
  await bobPage.getByRole('button', { name: 'Continue' }).click()
  await bobPage.getByText('The identity is linked').waitFor()
  const bobCard = bobPage.locator('#identities')
  await bobCard.getByRole('list', { name: 'Linked identities' }).waitFor()
  t.match(await textOf(bobCard), /bob@idp\.example/, 'the linked identity is listed')
  t.equal(await bobCard.getByRole('form', { name: 'Set a password' }).count(), 0, 'bob has a password: none offered')
  await screenshot(bobPage, 'oidc-linked')

  // Signed out, the provider button now signs bob in (the provider remembers him: no form this time).
  await bobPage.locator('.who').getByRole('button', { name: 'Sign out' }).click()
  await bobPage.getByRole('button', { name: 'Sign in with Test IdP' }).click()
  await bobPage.getByRole('heading', { name: 'My tasks' }).waitFor()
  t.equal(await textOf(bobPage.locator('.who-name strong')), 'bob', 'the linked identity signs bob in')
  t.same([...problems, ...bobProblems], [], 'no page errors')
})
