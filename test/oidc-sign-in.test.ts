import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { and, eq, sql } from 'drizzle-orm'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildApp } from '../src/app.js'
import { auditEvents, oneTimeSecrets, sessions, userIdentities, users } from '../src/db/schema.js'
import { hashSecret } from '../src/db/queries/one-time-secrets.js'
import { describeStartupError } from '../src/startup-errors.js'
import { loadConfig } from '../src/config.js'
import { buildTestApp, cookiesFrom, LogCapture, signIn, STRONG_PASSWORD, testConfig, type Cookies } from './helpers/app.js'
import { enrolTotp, roomInStep, totpCode, verifyCode } from './helpers/mfa.js'
import { signInAtProvider, startOidcProvider, type Accounts } from './helpers/oidc-provider.js'

// The API's callback URLs as the providers know them (PUBLIC_ORIGIN's default in tests). Nothing
// listens there: the URL the provider sends the browser to is handed to the app with inject.
const API_ORIGIN = 'http://127.0.0.1:8086'
const callbackOf = (id: string) => `${API_ORIGIN}/api/auth/oidc/${id}/callback`
const FLOW_COOKIE = '__Secure-oidc_flow'

const accounts: Accounts = {
  carol: { preferred_username: 'carol', email: 'carol@idp.example', name: 'Carol Example' },
  // Holds the address and the name of an account made with a password: must get an account of its own.
  'alice-at-idp': { preferred_username: 'alice', email: 'alice@example.com' },
  'bob-at-idp': { email: 'bob.work@idp.example', name: 'Bob Builder' },
  'dave-at-idp': { name: 'Dávid Ödön' },
  'eve-at-idp': { preferred_username: 'eve' },
  'frank-at-idp': { preferred_username: 'frank' },
  'dave-second': { email: 'dave@elsewhere.example' },
  'grace-at-idp': { preferred_username: 'grace' },
}

const logs = new LogCapture()
let app: FastifyInstance

t.before(async () => {
  const good = await startOidcProvider(t, { accounts, redirectUris: [callbackOf('test')] })
  const wrongNonce = await startOidcProvider(t, { accounts, redirectUris: [callbackOf('badnonce')], misbehave: 'wrongNonce' })
  const otherAudience = await startOidcProvider(t, { accounts, redirectUris: [callbackOf('badaud')], misbehave: 'otherAudience' })
  const forgedSignature = await startOidcProvider(t, { accounts, redirectUris: [callbackOf('badsig')], misbehave: 'forgedSignature' })
  app = await buildTestApp(t, {}, {
    logs,
    env: {
      OIDC_PROVIDERS: 'test,badnonce,badaud,badsig,down',
      ...good.env('test', 'Test IdP'),
      ...wrongNonce.env('badnonce'),
      ...otherAudience.env('badaud'),
      ...forgedSignature.env('badsig'),
      // Nothing listens here: outside production the provider is left out, and the start goes on.
      OIDC_DOWN_ISSUER: 'http://127.0.0.1:9',
      OIDC_DOWN_CLIENT_ID: 'x',
      OIDC_DOWN_CLIENT_SECRET: 'y',
    },
  })
})

/** Everything up to the callback: the start (with its flow cookie), the provider, the callback URL. */
async function toCallback (provider: string, account: string, cookies: Cookies = {}, link = false, challenge?: string) {
  const query = new URLSearchParams({ ...(link ? { link: '1' } : {}), ...(challenge === undefined ? {} : { challenge }) }).toString()
  const start = await app.inject({ method: 'GET', url: `/api/auth/oidc/${provider}/start${query === '' ? '' : `?${query}`}`, cookies })
  if (start.statusCode !== 302) throw new Error(`start: ${start.statusCode} ${start.body}`)
  const callback = await signInAtProvider(start.headers.location as string, account, callbackOf(provider))
  return { callbackPath: callback.pathname + callback.search, flowCookies: cookiesFrom(start), start }
}

/** The app's answer to the provider's redirect, and where it sends the browser on. */
async function callback (callbackPath: string, cookies: Cookies) {
  const response = await app.inject({ method: 'GET', url: callbackPath, cookies })
  const location = String(response.headers.location ?? '')
  const landing = new URLSearchParams(location.split('#/oidc?')[1] ?? '')
  return { response, location, code: landing.get('code'), error: landing.get('error') }
}

// The credential routes allow 30 requests a minute per address: each exchange here comes from an
// address of its own, as many people signing in would (one test below proves the limit).
let addresses = 0
const nextAddress = () => `10.0.${Math.floor(++addresses / 250)}.${addresses % 250 + 1}`

function exchange (code: string, cookies: Cookies = {}, remoteAddress = nextAddress(), verifier?: string) {
  return app.inject({ method: 'POST', url: '/api/auth/oidc/exchange', payload: { code, ...(verifier === undefined ? {} : { verifier }) }, cookies, remoteAddress })
}

/** What the example frontend keeps in its browser (the verifier) and sends to the start (its S256 hash). */
function browserBinding () {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') }
}

/** The whole sign-in, as the frontend finishes it: returns the exchange's answer and its cookies. */
async function signInWith (provider: string, account: string): Promise<{ response: LightMyRequestResponse, cookies: Cookies }> {
  const { callbackPath, flowCookies } = await toCallback(provider, account)
  const { code, error } = await callback(callbackPath, flowCookies)
  if (code === null) throw new Error(`callback refused: ${error}`)
  const response = await exchange(code)
  return { response, cookies: cookiesFrom(response) }
}

const userCount = async () => (await app.db.select({ n: sql<number>`count(*)::int` }).from(users))[0]!.n

t.test('the providers whose discovery worked are listed; one that is down is left out outside production', async (t) => {
  const response = await app.inject({ method: 'GET', url: '/api/auth/oidc/providers' })
  t.equal(response.statusCode, 200)
  t.same(response.json().items, [{ id: 'test', name: 'Test IdP' }, { id: 'badnonce', name: 'badnonce' }, { id: 'badaud', name: 'badaud' }, { id: 'badsig', name: 'badsig' }])
  t.match(logs.text, /identity provider left out: its discovery failed/)
  t.equal((await app.inject({ method: 'GET', url: '/api/auth/oidc/down/start' })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/api/auth/oidc/Nope/start' })).json().code, 'OIDC_PROVIDER_NOT_FOUND')
})

t.test('the start sends the browser to the provider with PKCE S256, state and nonce, and keeps only a hash of the state', async (t) => {
  const start = await app.inject({ method: 'GET', url: '/api/auth/oidc/test/start' })
  t.equal(start.statusCode, 302)
  const url = new URL(start.headers.location as string)
  t.equal(url.searchParams.get('response_type'), 'code')
  t.equal(url.searchParams.get('code_challenge_method'), 'S256')
  t.equal(url.searchParams.get('scope'), 'openid email profile')
  t.equal(url.searchParams.get('redirect_uri'), callbackOf('test'))
  const state = url.searchParams.get('state')!
  t.ok(state.length >= 43 && url.searchParams.get('nonce')!.length >= 22, 'random state and nonce')
  const [row] = await app.db.select().from(oneTimeSecrets).where(eq(oneTimeSecrets.secretHash, hashSecret(state)))
  t.equal(row?.kind, 'oidc_flow')
  t.notOk(JSON.stringify(row).includes(state), 'the state itself is not stored')
  t.ok(row!.expiresAt.getTime() - Date.now() <= 600_000 && row!.expiresAt.getTime() - Date.now() > 590_000, 'ten minutes')
  const flowCookie = start.cookies.find((cookie) => cookie.name === FLOW_COOKIE)
  t.match(flowCookie, { httpOnly: true, secure: true, sameSite: 'Lax', path: '/api/auth/oidc' }, 'the browser-binding cookie')
})

let carolId: string

t.test('a first sign-in creates an account; the callback sets no session cookie; the exchange starts the session', async (t) => {
  const before = await userCount()
  const { callbackPath, flowCookies } = await toCallback('test', 'carol')
  const back = await callback(callbackPath, flowCookies)
  t.equal(back.response.statusCode, 302)
  t.match(back.location, /^http:\/\/localhost:4100\/#\/oidc\?code=/)
  const set = back.response.cookies.map((cookie) => cookie.name)
  t.notOk(set.some((name) => /access_token|refresh_token|mfa_pending/.test(name)), 'no session cookie on the callback')
  t.equal(await userCount(), before, 'nothing is created before the frontend exchanges the code')

  const codeRow = await app.db.select().from(oneTimeSecrets).where(eq(oneTimeSecrets.secretHash, hashSecret(back.code!)))
  t.equal(codeRow[0]?.kind, 'oidc_code')
  t.ok(codeRow[0]!.expiresAt.getTime() - Date.now() <= 60_000, 'the code lives 60 s at most')

  const response = await exchange(back.code!)
  t.equal(response.statusCode, 200)
  const { user } = response.json()
  t.match(user, { username: 'carol', role: 'user', mfa: false })
  carolId = user.id
  const cookies = cookiesFrom(response)
  t.ok(cookies['__Host-access_token'] && cookies['__Secure-refresh_token'], 'the session cookies, set by the exchange')
  t.equal((await app.inject({ method: 'GET', url: '/api/auth/me', cookies })).json().user.id, carolId)
  const [session] = await app.db.select({ method: sessions.method }).from(sessions).where(eq(sessions.userId, carolId))
  t.equal(session?.method, 'oidc')
  const [row] = await app.db.select({ passwordHash: users.passwordHash }).from(users).where(eq(users.id, carolId))
  t.equal(row?.passwordHash, null, 'an account made by a provider has no password')
  const [identity] = await app.db.select().from(userIdentities).where(eq(userIdentities.userId, carolId))
  t.match(identity, { subject: 'carol', email: 'carol@idp.example', provider: 'test' })
  const types = (await app.db.select({ type: auditEvents.type }).from(auditEvents).where(eq(auditEvents.userId, carolId))).map((event) => event.type)
  t.same(types.sort(), ['login', 'register'])
})

t.test('a second sign-in finds the same account', async (t) => {
  const before = await userCount()
  const { response } = await signInWith('test', 'carol')
  t.equal(response.statusCode, 200)
  t.equal(response.json().user.id, carolId)
  t.equal(await userCount(), before)
})

t.test('a callback works once: replayed, it is refused', async (t) => {
  const { callbackPath, flowCookies } = await toCallback('test', 'carol')
  const first = await callback(callbackPath, flowCookies)
  t.ok(first.code, 'the first use gives a code')
  const replay = await callback(callbackPath, flowCookies)
  t.equal(replay.response.statusCode, 302)
  t.equal(replay.error, 'invalid_state')
  t.equal(replay.code, null)
})

t.test('a wrong state is refused, and so is a callback in a browser that did not start the flow', async (t) => {
  const { callbackPath, flowCookies } = await toCallback('test', 'carol')
  const url = new URL(callbackPath, API_ORIGIN)
  url.searchParams.set('state', 'not-the-state-we-sent-aaaaaaaaaaaaaaaaaaaaaaaaa')
  t.equal((await callback(url.pathname + url.search, flowCookies)).error, 'invalid_state')
  url.searchParams.delete('state')
  t.equal((await callback(url.pathname + url.search, flowCookies)).error, 'invalid_state', 'no state at all')
  // Login CSRF: the attacker's finished flow, opened in the victim's browser (no flow cookie there).
  const elsewhere = await callback(callbackPath, {})
  t.equal(elsewhere.error, 'invalid_state')
  t.equal((await callback(callbackPath, flowCookies)).error, 'invalid_state', 'and that flow is used up')
})

t.test('a provider that refuses (the person said no) lands on the frontend with an error', async (t) => {
  const start = await app.inject({ method: 'GET', url: '/api/auth/oidc/test/start' })
  const state = new URL(start.headers.location as string).searchParams.get('state')!
  const back = await callback(`/api/auth/oidc/test/callback?error=access_denied&state=${state}`, cookiesFrom(start))
  t.equal(back.error, 'provider_refused')
})

t.test('a one-time code works once, and not after it expired', async (t) => {
  const { callbackPath, flowCookies } = await toCallback('test', 'carol')
  const { code } = await callback(callbackPath, flowCookies)
  t.equal((await exchange(code!)).statusCode, 200)
  const replayed = await exchange(code!)
  t.equal(replayed.statusCode, 401)
  t.equal(replayed.json().code, 'OIDC_FAILED')
  t.notOk(replayed.headers['set-cookie'], 'a refusal sets no cookie')

  const second = await toCallback('test', 'carol')
  const late = await callback(second.callbackPath, second.flowCookies)
  await app.db.update(oneTimeSecrets).set({ expiresAt: sql`now() - interval '1 second'` })
    .where(eq(oneTimeSecrets.secretHash, hashSecret(late.code!)))
  const expired = await exchange(late.code!)
  t.equal(expired.statusCode, 401)
  t.equal(expired.json().code, 'OIDC_FAILED')
  t.equal((await exchange('made-up')).json().code, 'OIDC_FAILED')
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/oidc/exchange', payload: {} })).statusCode, 400)
})

t.test('the same code exchanged twice at once starts one session', async (t) => {
  const { callbackPath, flowCookies } = await toCallback('test', 'carol')
  const { code } = await callback(callbackPath, flowCookies)
  const answers = await Promise.all([exchange(code!), exchange(code!)])
  t.same(answers.map((answer) => answer.statusCode).sort(), [200, 401])
})

t.test("one identity's first sign-in in two tabs at once makes one account, and both tabs are signed in to it", async (t) => {
  const before = await userCount()
  const codes: string[] = []
  for (let tab = 0; tab < 2; tab++) {
    const { callbackPath, flowCookies } = await toCallback('test', 'grace-at-idp')
    codes.push((await callback(callbackPath, flowCookies)).code!)
  }
  const answers = await Promise.all(codes.map((code) => exchange(code)))
  t.same(answers.map((answer) => answer.statusCode), [200, 200])
  const [first, second] = answers.map((answer) => answer.json().user.id as string)
  t.equal(first, second, 'both tabs are signed in to the same account')
  t.equal(await userCount(), before + 1, 'one account made: none left behind without a way in')
  const linked = await app.db.select().from(userIdentities).where(eq(userIdentities.userId, first!))
  t.equal(linked.length, 1, 'and the identity is linked to it')
})

t.test('an ID token with a nonce the API never sent is refused, and creates nothing', async (t) => {
  const before = await userCount()
  const { callbackPath, flowCookies } = await toCallback('badnonce', 'eve-at-idp')
  const back = await callback(callbackPath, flowCookies)
  t.equal(back.error, 'verification_failed')
  t.equal(back.code, null)
  t.equal(await userCount(), before)
  t.match(logs.text, /ID Token \W+nonce\W+ claim/, 'the log names the claim that did not match')
})

t.test('an ID token issued for another client (audience) is refused, and creates nothing', async (t) => {
  const before = await userCount()
  const { callbackPath, flowCookies } = await toCallback('badaud', 'frank-at-idp')
  const back = await callback(callbackPath, flowCookies)
  t.equal(back.error, 'verification_failed')
  t.equal(await userCount(), before)
  t.match(logs.text, /JWT \W+aud\W+ \(audience\) claim/, 'the log names the claim that did not match')
})

t.test('an ID token whose signature is not the provider\'s is refused, and creates nothing', async (t) => {
  const before = await userCount()
  const { callbackPath, flowCookies } = await toCallback('badsig', 'dave-second')
  const back = await callback(callbackPath, flowCookies)
  t.equal(back.error, 'verification_failed')
  t.equal(back.code, null)
  t.equal(await userCount(), before)
  t.match(logs.text, /"provider":"badsig"[^\n]*signature/i, 'the log says the signature failed')
})

t.test('a flow older than ten minutes is refused at the callback', async (t) => {
  const { callbackPath, flowCookies, start } = await toCallback('test', 'carol')
  const state = new URL(start.headers.location as string).searchParams.get('state')!
  await app.db.update(oneTimeSecrets).set({ expiresAt: sql`now() - interval '1 second'` })
    .where(eq(oneTimeSecrets.secretHash, hashSecret(state)))
  const back = await callback(callbackPath, flowCookies)
  t.equal(back.error, 'invalid_state')
  t.equal(back.code, null)
})

t.test('a flow begun with a challenge needs its verifier at the exchange: a code planted in another browser signs nobody in', async (t) => {
  const browser = browserBinding()
  const signInWithChallenge = async () => {
    const { callbackPath, flowCookies } = await toCallback('test', 'carol', {}, false, browser.challenge)
    return (await callback(callbackPath, flowCookies)).code!
  }
  const bare = await exchange(await signInWithChallenge())
  t.equal(bare.statusCode, 401, 'without the verifier')
  t.equal(bare.json().code, 'OIDC_FAILED')
  t.notOk(bare.headers['set-cookie'], 'and no cookie')
  const wrong = await exchange(await signInWithChallenge(), {}, nextAddress(), browserBinding().verifier)
  t.equal(wrong.statusCode, 401, "another browser's verifier")
  const right = await exchange(await signInWithChallenge(), {}, nextAddress(), browser.verifier)
  t.equal(right.statusCode, 200, 'its own verifier')
  t.equal(right.json().user.id, carolId)

  // The attack: an attacker finishes a sign-in with their own provider account (no challenge, or
  // their own) and sends the victim the landing URL. The victim's browser sends its verifier: refused.
  const attackerFlow = await toCallback('test', 'eve-at-idp')
  const planted = await callback(attackerFlow.callbackPath, attackerFlow.flowCookies)
  const victim = await exchange(planted.code!, {}, nextAddress(), browser.verifier)
  t.equal(victim.statusCode, 401, "the attacker's code, from a flow without a challenge")
  t.equal(victim.json().code, 'OIDC_FAILED')
  const attackerBrowser = browserBinding()
  const plantedWithChallenge = await toCallback('test', 'eve-at-idp', {}, false, attackerBrowser.challenge)
  const planted2 = await callback(plantedWithChallenge.callbackPath, plantedWithChallenge.flowCookies)
  t.equal((await exchange(planted2.code!, {}, nextAddress(), browser.verifier)).statusCode, 401, "the attacker's code, from a flow with their challenge")

  // A code stored by a version before challenges has no such key: still a bare-`{code}` code.
  const older = await toCallback('test', 'carol')
  const olderCode = (await callback(older.callbackPath, older.flowCookies)).code!
  await app.db.update(oneTimeSecrets).set({ data: sql`${oneTimeSecrets.data} - 'challenge'` }).where(eq(oneTimeSecrets.secretHash, hashSecret(olderCode)))
  t.equal((await exchange(olderCode)).statusCode, 200, 'a code from before the upgrade')

  const malformed = await app.inject({ method: 'GET', url: '/api/auth/oidc/test/start?challenge=short' })
  t.equal(malformed.statusCode, 400, 'a challenge is a base64url SHA-256')
})

t.test('an identity with the name and e-mail of an existing account gets a new account, never that one', async (t) => {
  const alice = await signIn(app, 'alice')
  // Alice's verified address is the one the provider's account claims (verified there too).
  await app.db.update(users).set({ email: 'alice@example.com', emailVerifiedAt: new Date() }).where(eq(users.id, alice.id))
  const { response } = await signInWith('test', 'alice-at-idp')
  t.equal(response.statusCode, 200)
  const { user } = response.json()
  t.not(user.id, alice.id, 'not linked to alice by name or address')
  t.equal(user.username, 'alice-2', 'the name made unique')
  t.equal(user.email, null, 'the new account does not take the address either')
  t.same(await app.db.select().from(userIdentities).where(eq(userIdentities.userId, alice.id)), [])
  const [aliceNow] = await app.db.select({ email: users.email, verified: users.emailVerifiedAt }).from(users).where(eq(users.id, alice.id))
  t.equal(aliceNow?.email, 'alice@example.com', 'alice keeps her address')
  t.ok(aliceNow?.verified, 'still verified')
})

t.test('usernames come from the claims, sanitised to the username rule', async (t) => {
  const bob = await signInWith('test', 'bob-at-idp')
  t.equal(bob.response.json().user.username, 'Bob.Builder', 'from the name when there is no preferred_username')
  const dave = await signInWith('test', 'dave-at-idp')
  t.equal(dave.response.json().user.username, 'David.Odon', 'accents dropped')
})

t.test('linking while signed in adds the identity to the caller; the next sign-in with it finds the caller', async (t) => {
  const frank = await signIn(app, 'frank_pw')
  const started = await app.inject({ method: 'POST', url: '/api/auth/oidc/test/link', cookies: frank.cookies })
  t.equal(started.statusCode, 200)
  const callbackUrl = await signInAtProvider(started.json().url, 'frank-at-idp', callbackOf('test'))
  const back = await callback(callbackUrl.pathname + callbackUrl.search, {})
  t.ok(back.code, 'a link flow started by fetch needs no flow cookie: the exchange checks the session')

  const someoneElse = await signIn(app)
  const stolen = await exchange(back.code!, someoneElse.cookies)
  t.equal(stolen.statusCode, 401, 'another user cannot finish my linking')
  t.equal(stolen.json().code, 'OIDC_FAILED')

  const again = await app.inject({ method: 'POST', url: '/api/auth/oidc/test/link', cookies: frank.cookies })
  const secondUrl = await signInAtProvider(again.json().url, 'frank-at-idp', callbackOf('test'))
  const secondBack = await callback(secondUrl.pathname + secondUrl.search, {})
  const linked = await exchange(secondBack.code!, frank.cookies)
  t.equal(linked.statusCode, 200)
  t.equal(linked.json().user.id, frank.id)
  t.match(linked.json().linked, { provider: 'test', email: null })
  t.notOk(cookiesFrom(linked)['__Host-access_token'], 'linking starts no new session')
  const [audit] = await app.db.select().from(auditEvents).where(and(eq(auditEvents.userId, frank.id), eq(auditEvents.type, 'oidc_linked')))
  t.match(audit?.detail, { provider: 'test' })

  const { response } = await signInWith('test', 'frank-at-idp')
  t.equal(response.json().user.id, frank.id, 'the identity now signs frank in')

  // Linking it once more changes nothing and records nothing.
  const relink = await app.inject({ method: 'POST', url: '/api/auth/oidc/test/link', cookies: frank.cookies })
  const relinkUrl = await signInAtProvider(relink.json().url, 'frank-at-idp', callbackOf('test'))
  const relinkBack = await callback(relinkUrl.pathname + relinkUrl.search, {})
  t.equal((await exchange(relinkBack.code!, frank.cookies)).statusCode, 200)
  const linkEvents = await app.db.select().from(auditEvents).where(and(eq(auditEvents.userId, frank.id), eq(auditEvents.type, 'oidc_linked')))
  t.equal(linkEvents.length, 1, 'one oidc_linked event')
  const listed = await app.inject({ method: 'GET', url: '/api/auth/oidc/identities', cookies: frank.cookies })
  t.equal(listed.json().items.length, 1)

  // An identity already someone's cannot be linked to another account.
  const grab = await app.inject({ method: 'POST', url: '/api/auth/oidc/test/link', cookies: someoneElse.cookies })
  const grabUrl = await signInAtProvider(grab.json().url, 'frank-at-idp', callbackOf('test'))
  const grabBack = await callback(grabUrl.pathname + grabUrl.search, {})
  t.equal((await exchange(grabBack.code!, someoneElse.cookies)).statusCode, 401)
})

t.test('start with link=1 links to the session that the visit carries, and asks to sign in without one', async (t) => {
  const anonymous = await app.inject({ method: 'GET', url: '/api/auth/oidc/test/start?link=1' })
  t.equal(anonymous.statusCode, 302)
  t.match(anonymous.headers.location, /#\/oidc\?error=sign_in_first$/)
  const gina = await signIn(app, 'gina')
  const { callbackPath, flowCookies } = await toCallback('test', 'eve-at-idp', gina.cookies, true)
  const back = await callback(callbackPath, flowCookies)
  const linked = await exchange(back.code!, gina.cookies)
  t.equal(linked.statusCode, 200)
  t.equal(linked.json().user.id, gina.id)
})

t.test('unlinking: only your own identities, never the last way to sign in', async (t) => {
  const carol = await signInWith('test', 'carol')
  const [carolIdentity] = (await app.inject({ method: 'GET', url: '/api/auth/oidc/identities', cookies: carol.cookies })).json().items
  const last = await app.inject({ method: 'DELETE', url: `/api/auth/oidc/identities/${carolIdentity.id}`, cookies: carol.cookies })
  t.equal(last.statusCode, 409)
  t.equal(last.json().code, 'LAST_SIGN_IN_METHOD')

  const frank = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'frank_pw', password: STRONG_PASSWORD } })
  const frankCookies = cookiesFrom(frank)
  const notYours = await app.inject({ method: 'DELETE', url: `/api/auth/oidc/identities/${carolIdentity.id}`, cookies: frankCookies })
  t.equal(notYours.statusCode, 404)
  t.equal(notYours.json().code, 'IDENTITY_NOT_FOUND')
  const [frankIdentity] = (await app.inject({ method: 'GET', url: '/api/auth/oidc/identities', cookies: frankCookies })).json().items
  const removed = await app.inject({ method: 'DELETE', url: `/api/auth/oidc/identities/${frankIdentity.id}`, cookies: frankCookies })
  t.equal(removed.statusCode, 204, 'frank has a password: the identity may go')
  t.equal((await app.inject({ method: 'GET', url: '/api/auth/oidc/identities', cookies: frankCookies })).json().items.length, 0)
  const audits = await app.db.select().from(auditEvents).where(eq(auditEvents.type, 'oidc_unlinked'))
  t.equal(audits.length, 1)
  t.equal((await app.inject({ method: 'GET', url: '/api/auth/oidc/identities' })).statusCode, 401)
})

t.test('two unlinks at once cannot remove both identities of an account without a password', async (t) => {
  const dave = await signInWith('test', 'dave-at-idp')
  const started = await app.inject({ method: 'POST', url: '/api/auth/oidc/test/link', cookies: dave.cookies })
  const back = await signInAtProvider(started.json().url, 'dave-second', callbackOf('test'))
  const { code } = await callback(back.pathname + back.search, {})
  t.equal((await exchange(code!, dave.cookies)).statusCode, 200)
  const { items } = (await app.inject({ method: 'GET', url: '/api/auth/oidc/identities', cookies: dave.cookies })).json()
  t.equal(items.length, 2)
  const answers = await Promise.all(items.map((identity: { id: string }) =>
    app.inject({ method: 'DELETE', url: `/api/auth/oidc/identities/${identity.id}`, cookies: dave.cookies })))
  t.same(answers.map((answer) => answer.statusCode).sort(), [204, 409])
  t.equal((await app.inject({ method: 'GET', url: '/api/auth/oidc/identities', cookies: dave.cookies })).json().items.length, 1, 'one way in is left')
})

t.test('an account without a password: password sign-in fails like a wrong password, until one is set', async (t) => {
  const carol = await signInWith('test', 'carol')
  const attempt = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'carol', password: STRONG_PASSWORD } })
  t.equal(attempt.statusCode, 401)
  t.same(attempt.json(), (await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'nobody_here', password: STRONG_PASSWORD } })).json(), 'the same answer as an unknown user')
  const change = await app.inject({ method: 'POST', url: '/api/auth/password', cookies: carol.cookies, payload: { currentPassword: 'anything-at-all', newPassword: STRONG_PASSWORD } })
  t.equal(change.statusCode, 401, 'no current password to change')
  const totp = await app.inject({ method: 'POST', url: '/api/auth/mfa/totp', cookies: carol.cookies, payload: { currentPassword: 'anything-at-all' }, remoteAddress: nextAddress() })
  t.equal(totp.statusCode, 401)

  const setPassword = (newPassword: string, cookies: Cookies) =>
    app.inject({ method: 'POST', url: '/api/auth/password/set', cookies, payload: { newPassword }, remoteAddress: nextAddress() })
  t.equal((await setPassword('password123', carol.cookies)).json().code, 'PASSWORD_TOO_COMMON')
  t.equal((await setPassword(STRONG_PASSWORD, {})).statusCode, 401)
  const set = await setPassword(STRONG_PASSWORD, carol.cookies)
  t.equal(set.statusCode, 204)
  const again = await setPassword('another-Fine-pass-77', carol.cookies)
  t.equal(again.statusCode, 409)
  t.equal(again.json().code, 'PASSWORD_ALREADY_SET')
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'carol', password: STRONG_PASSWORD }, remoteAddress: nextAddress() })
  t.equal(login.statusCode, 200)
  t.equal(login.json().user.id, carolId)
})

t.test('a user with TOTP signing in with a provider still owes the second factor', async (t) => {
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'carol', password: STRONG_PASSWORD }, remoteAddress: nextAddress() })
  const enrolled = await enrolTotp(app, { id: carolId, username: 'carol', password: STRONG_PASSWORD, cookies: cookiesFrom(login) })
  const { response, cookies } = await signInWith('test', 'carol')
  t.equal(response.statusCode, 200)
  t.same(response.json(), { mfaRequired: true, methods: ['totp', 'recovery_code'] })
  t.notOk(cookies['__Host-access_token'], 'no session yet')
  t.ok(cookies['__Secure-mfa_pending'])
  await roomInStep()
  const verified = await verifyCode(app, cookies, { code: totpCode(enrolled.secret) })
  t.equal(verified.statusCode, 200)
  t.equal(verified.json().user.id, carolId)
})

t.test('the exchange is limited per address like /login', async (t) => {
  const address = nextAddress()
  const answers = []
  for (let i = 0; i < 31; i++) answers.push((await exchange('no-such-code', {}, address)).statusCode)
  t.equal(answers.filter((status) => status === 401).length, 30)
  t.equal(answers.at(-1), 429)
})

t.test('the callback\'s code and state, and the browser\'s challenge, never reach the log', async (t) => {
  const { challenge } = browserBinding()
  const { callbackPath, flowCookies } = await toCallback('test', 'eve-at-idp', {}, false, challenge)
  const url = new URL(callbackPath, API_ORIGIN)
  await callback(callbackPath, flowCookies)
  t.notOk(logs.text.includes(url.searchParams.get('code')!), 'the authorization code')
  t.notOk(logs.text.includes(url.searchParams.get('state')!), 'the state')
  t.notOk(logs.text.includes(challenge), 'the challenge')
  t.match(logs.text, /callback\?code=%5Bredacted%5D&state=%5Bredacted%5D/)
  t.match(logs.text, /start\?challenge=%5Bredacted%5D/)
})

t.test('in production, a provider whose discovery fails refuses the start with one line', async (t) => {
  const config = testConfig({
    isProduction: true,
    oidcProviders: [{ id: 'corp', name: 'Corp', issuer: 'https://127.0.0.1:9', clientId: 'x', clientSecret: 'y' }],
  })
  const error = await buildApp({ config }).then(async (built) => { await built.close(); return undefined }, (failure: unknown) => failure)
  t.ok(error, 'the start is refused')
  t.match(describeStartupError(error, { databaseUrl: undefined }), /^Cannot start: the identity provider "corp" \(OIDC_CORP_ISSUER=https:\/\/127\.0\.0\.1:9\) did not answer its discovery document/)
})

t.test('OIDC_PROVIDERS is checked at start, naming the variable', async (t) => {
  const base = { NODE_ENV: 'test', DATA_DIR: 'memory://', FRONTEND_PORT: '0' }
  const full = { OIDC_PROVIDERS: 'corp', OIDC_CORP_ISSUER: 'https://sso.example.com', OIDC_CORP_CLIENT_ID: 'id', OIDC_CORP_CLIENT_SECRET: 'secret' }
  t.match(loadConfig({ ...base, ...full }).oidcProviders, [{ id: 'corp', name: 'corp', issuer: 'https://sso.example.com', clientId: 'id' }])
  t.throws(() => loadConfig({ ...base, ...full, OIDC_CORP_CLIENT_SECRET: '' }), /OIDC_CORP_CLIENT_SECRET must be set/)
  t.throws(() => loadConfig({ ...base, ...full, OIDC_PROVIDERS: 'corp,bad-id' }), /OIDC_PROVIDERS has "bad-id"/)
  t.throws(() => loadConfig({ ...base, ...full, OIDC_CORP_ISSUER: 'not a url' }), /OIDC_CORP_ISSUER/)
  t.throws(() => loadConfig({ ...base, ...full, OIDC_CORP_ISSUER: 'ftp://sso.example.com' }), /OIDC_CORP_ISSUER/)
})
