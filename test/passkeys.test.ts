import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { and, count, eq, sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { hashSecret } from '../src/db/queries/one-time-secrets.js'
import { auditEvents, oneTimeSecrets, passkeys, sessions } from '../src/db/schema.js'
import { buildTestApp, cookiesFrom, signIn } from './helpers/app.js'
import { addPasskey, finishRegistration, ORIGIN, registrationOptions, RP_ID } from './helpers/passkeys.js'
import { FLAG_UP, SoftAuthenticator } from './helpers/webauthn.js'

async function loginOptions (app: FastifyInstance) {
  const answer = await app.inject({ method: 'POST', url: '/api/auth/passkeys/login/options', payload: {} })
  if (answer.statusCode !== 200) throw new Error(`login/options: ${answer.statusCode} ${answer.body}`)
  return answer.json().options
}

const finishLogin = (app: FastifyInstance, response: unknown) =>
  app.inject({ method: 'POST', url: '/api/auth/passkeys/login', payload: { response } })

async function signInWith (app: FastifyInstance, authenticator: SoftAuthenticator) {
  return finishLogin(app, authenticator.get(await loginOptions(app), { origin: ORIGIN, rpId: RP_ID }))
}

const storedCounter = async (app: FastifyInstance, credentialId: string) =>
  (await app.db.select({ counter: passkeys.counter }).from(passkeys).where(eq(passkeys.credentialId, credentialId)))[0]?.counter

/** A challenge's stored row, found by the hash of the value the options carry; undefined if none. */
async function challengeRow (app: FastifyInstance, challenge: string) {
  const [row] = await app.db.select().from(oneTimeSecrets).where(eq(oneTimeSecrets.secretHash, hashSecret(challenge)))
  return row === undefined ? undefined : { kind: row.kind, userId: row.userId, lifetimeMs: row.expiresAt.getTime() - row.createdAt.getTime() }
}

const passkeyFailures = async (app: FastifyInstance, userId: string | null) =>
  (await app.db.select({ detail: auditEvents.detail }).from(auditEvents)
    .where(and(eq(auditEvents.type, 'login_failed'), userId === null ? sql`${auditEvents.userId} is null` : eq(auditEvents.userId, userId))))
    .map((row) => row.detail.reason)

t.test('passkeys', async (t) => {
  // MFA_REQUIRED_ROLES=admin: a passkey must satisfy it. Not a test of the per-address limit (every
  // request here comes from one address); the per-account one still applies.
  const app = await buildTestApp(t, { mfaRequiredRoles: ['admin'], rateLimitAllowList: ['127.0.0.1'] })

  t.test('a software authenticator registers a passkey and signs in with it, with no password and no second step', async (t) => {
    const alice = await signIn(app)
    const options = await registrationOptions(app, alice.cookies)
    t.match(options, {
      rp: { id: RP_ID, name: 'cookie-auth-api' },
      user: { name: alice.username },
      attestation: 'none',
      authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
    })
    t.ok(Buffer.from(options.challenge, 'base64url').length >= 16, 'a challenge of at least 16 random bytes')
    const stored = await app.db.select({ secretHash: oneTimeSecrets.secretHash }).from(oneTimeSecrets).where(eq(oneTimeSecrets.kind, 'webauthn_registration'))
    t.notOk(stored.some((row) => row.secretHash === options.challenge), 'only a hash of the challenge is stored')
    t.same(await challengeRow(app, options.challenge), { kind: 'webauthn_registration', userId: alice.id, lifetimeMs: 300_000 }, 'found by its hash, Alice\'s, for 5 minutes')

    const authenticator = new SoftAuthenticator()
    const registered = await finishRegistration(app, alice.cookies, authenticator.create(options, { origin: ORIGIN }), 'My laptop')
    t.equal(registered.statusCode, 201)
    const passkey = registered.json().passkey
    t.match(passkey, { name: 'My laptop', lastUsedAt: null })
    t.same(Object.keys(passkey).sort(), ['createdAt', 'id', 'lastUsedAt', 'name'], 'no key material leaves the server')

    const list = await app.inject({ method: 'GET', url: '/api/auth/passkeys', cookies: alice.cookies })
    t.same(list.json().items.map((item: { id: string }) => item.id), [passkey.id])
    const mfa = await app.inject({ method: 'GET', url: '/api/auth/mfa', cookies: alice.cookies })
    t.match(mfa.json(), { totp: false, passkeys: 1 })
    const me = await app.inject({ method: 'GET', url: '/api/auth/me', cookies: alice.cookies })
    t.equal(me.json().user.mfa, true, 'a passkey is a second factor')
    const added = await app.db.select({ detail: auditEvents.detail }).from(auditEvents).where(and(eq(auditEvents.type, 'passkey_added'), eq(auditEvents.userId, alice.id)))
    t.match(added, [{ detail: { passkeyId: passkey.id, name: 'My laptop' } }])

    const login = await loginOptions(app)
    t.same(login.allowCredentials, [], 'discoverable: the authenticator offers its passkeys, no username asked')
    t.equal(login.userVerification, 'required')
    t.equal(login.rpId, RP_ID)
    t.same(await challengeRow(app, login.challenge), { kind: 'webauthn_authentication', userId: null, lifetimeMs: 300_000 }, 'a sign-in challenge belongs to nobody yet, for 5 minutes')
    const signedIn = await finishLogin(app, authenticator.get(login, { origin: ORIGIN, rpId: RP_ID }))
    t.equal(signedIn.statusCode, 200, signedIn.body)
    t.match(signedIn.json(), { user: { id: alice.id, username: alice.username, mfa: true } })
    const cookies = cookiesFrom(signedIn)
    t.ok(cookies['__Host-access_token'] && cookies['__Secure-refresh_token'] && cookies['__Secure-device'], 'the session cookies and the device cookie, as /login sets them')
    const tasks = await app.inject({ method: 'GET', url: '/api/tasks', cookies })
    t.equal(tasks.statusCode, 200, 'the new session works')
    const [session] = await app.db.select({ id: sessions.id, method: sessions.method }).from(sessions).where(eq(sessions.userId, alice.id)).orderBy(sql`${sessions.createdAt} desc`).limit(1)
    t.equal(session?.method, 'passkey')
    // signIn() above audited a password login too: only the passkey one must name the new session.
    const logins = await app.db.select({ actorId: auditEvents.actorId, detail: auditEvents.detail }).from(auditEvents).where(and(eq(auditEvents.type, 'login'), eq(auditEvents.userId, alice.id)))
    t.same(logins.filter((row) => row.detail.method === 'passkey').map((row) => ({ actorId: row.actorId, sessionId: row.detail.sessionId })),
      [{ actorId: alice.id, sessionId: session?.id }], 'the sign-in is audited as a login by passkey, with its session')
    t.equal(await storedCounter(app, authenticator.id), 1, 'the counter moved on')
    const listed = await app.inject({ method: 'GET', url: '/api/auth/passkeys', cookies })
    t.ok(listed.json().items[0].lastUsedAt, 'last use recorded')

    const metrics = await app.metrics.registry.getSingleMetricAsString('auth_passkey_ceremonies_total')
    t.match(metrics, /auth_passkey_ceremonies_total\{ceremony="registration",outcome="success"\} [1-9]/)
    t.match(metrics, /auth_passkey_ceremonies_total\{ceremony="authentication",outcome="success"\} [1-9]/)
  })

  t.test('several passkeys per user, each with its name; removing one is audited, another user\'s is not found', async (t) => {
    const bob = await signIn(app)
    const carol = await signIn(app)
    const first = await addPasskey(app, bob, 'Phone')
    const second = await addPasskey(app, bob, 'YubiKey')
    const carols = await addPasskey(app, carol, 'Carol\'s phone')
    const list = await app.inject({ method: 'GET', url: '/api/auth/passkeys', cookies: bob.cookies })
    t.same(list.json().items.map((item: { name: string }) => item.name), ['Phone', 'YubiKey'])

    const foreign = await app.inject({ method: 'DELETE', url: `/api/auth/passkeys/${carols.passkey.id}`, cookies: bob.cookies })
    t.equal(foreign.statusCode, 404, 'another user\'s passkey is simply not found')
    t.equal(foreign.json().code, 'PASSKEY_NOT_FOUND')
    t.equal((await signInWith(app, carols.authenticator)).statusCode, 200, 'and it still works for its owner')

    const removed = await app.inject({ method: 'DELETE', url: `/api/auth/passkeys/${first.passkey.id}`, cookies: bob.cookies })
    t.equal(removed.statusCode, 204)
    const audit = await app.db.select({ detail: auditEvents.detail }).from(auditEvents).where(and(eq(auditEvents.type, 'passkey_removed'), eq(auditEvents.userId, bob.id)))
    t.match(audit, [{ detail: { passkeyId: first.passkey.id, name: 'Phone' } }])
    t.equal((await app.inject({ method: 'DELETE', url: `/api/auth/passkeys/${first.passkey.id}`, cookies: bob.cookies })).statusCode, 404, 'gone')
    const gone = await signInWith(app, first.authenticator)
    t.equal(gone.statusCode, 401, 'a removed passkey signs nobody in')
    t.equal(gone.json().code, 'PASSKEY_INVALID')
    t.equal((await signInWith(app, second.authenticator)).statusCode, 200, 'the other one still does')

    t.equal((await app.inject({ method: 'GET', url: '/api/auth/passkeys' })).statusCode, 401, 'the list is for the signed-in user')
    const unnamed = await finishRegistration(app, bob.cookies, new SoftAuthenticator().create(await registrationOptions(app, bob.cookies), { origin: ORIGIN }), '\u0000')
    t.equal(unnamed.statusCode, 400, 'a name with a control character is bad input')
  })

  t.test('registration is refused for a wrong origin, a wrong RP id, no user verification, a reused or expired challenge, or another user\'s challenge', async (t) => {
    const dave = await signIn(app)
    const eve = await signIn(app)
    const refusedWith = async (label: string, response: unknown, cookies = dave.cookies) => {
      const answer = await finishRegistration(app, cookies, response)
      t.equal(answer.statusCode, 401, `${label}: 401`)
      t.equal(answer.json().code, 'PASSKEY_INVALID', label)
    }
    await refusedWith('wrong origin', new SoftAuthenticator().create(await registrationOptions(app, dave.cookies), { origin: 'http://127.0.0.1:4100' }))
    await refusedWith('wrong RP id', new SoftAuthenticator().create(await registrationOptions(app, dave.cookies), { origin: ORIGIN, rpId: 'example.com' }))
    await refusedWith('no user verification', new SoftAuthenticator().create(await registrationOptions(app, dave.cookies), { origin: ORIGIN, flags: FLAG_UP }))
    await refusedWith('another user\'s challenge', new SoftAuthenticator().create(await registrationOptions(app, eve.cookies), { origin: ORIGIN }))

    const options = await registrationOptions(app, dave.cookies)
    const authenticator = new SoftAuthenticator()
    const response = authenticator.create(options, { origin: ORIGIN })
    t.equal((await finishRegistration(app, dave.cookies, response)).statusCode, 201)
    await refusedWith('the same response again (a used challenge)', response)

    const stale = await registrationOptions(app, dave.cookies)
    await app.db.update(oneTimeSecrets).set({ expiresAt: sql`now() - interval '1 second'` }).where(eq(oneTimeSecrets.kind, 'webauthn_registration'))
    await refusedWith('an expired challenge', new SoftAuthenticator().create(stale, { origin: ORIGIN }))

    const list = await app.inject({ method: 'GET', url: '/api/auth/passkeys', cookies: dave.cookies })
    t.equal(list.json().items.length, 1, 'nothing but the one good registration was stored')
  })

  t.test('sign-in is refused for a wrong origin, a wrong RP id, no user verification, a reused or expired challenge, another key\'s signature, or a counter that goes backwards', async (t) => {
    const frank = await signIn(app)
    const { authenticator } = await addPasskey(app, frank)
    const refusedWith = async (label: string, response: unknown) => {
      const answer = await finishLogin(app, response)
      t.equal(answer.statusCode, 401, `${label}: 401`)
      t.equal(answer.json().code, 'PASSKEY_INVALID', label)
      t.notOk(answer.headers['set-cookie'], `${label}: no cookie`)
    }
    await refusedWith('wrong origin', authenticator.get(await loginOptions(app), { origin: 'https://evil.example', rpId: RP_ID }))
    await refusedWith('wrong RP id', authenticator.get(await loginOptions(app), { origin: ORIGIN, rpId: 'example.com' }))
    await refusedWith('no user verification', authenticator.get(await loginOptions(app), { origin: ORIGIN, rpId: RP_ID, flags: FLAG_UP }))
    const { privateKey: otherKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    await refusedWith('a signature by another key', authenticator.get(await loginOptions(app), { origin: ORIGIN, rpId: RP_ID, signingKey: otherKey }))

    const good = authenticator.get(await loginOptions(app), { origin: ORIGIN, rpId: RP_ID })
    t.equal((await finishLogin(app, good)).statusCode, 200)
    await refusedWith('the same response again (a used challenge)', good)

    const twice = authenticator.get(await loginOptions(app), { origin: ORIGIN, rpId: RP_ID })
    const racing = await Promise.all([finishLogin(app, twice), finishLogin(app, twice)])
    t.same(racing.map((answer) => answer.statusCode).sort(), [200, 401], 'one response sent twice at once: one session')

    const stale = await loginOptions(app)
    await app.db.update(oneTimeSecrets).set({ expiresAt: sql`now() - interval '1 second'` }).where(eq(oneTimeSecrets.kind, 'webauthn_authentication'))
    await refusedWith('an expired challenge', authenticator.get(stale, { origin: ORIGIN, rpId: RP_ID }))

    const before = await storedCounter(app, authenticator.id)
    await refusedWith('a counter that goes backwards (a cloned key)', authenticator.get(await loginOptions(app), { origin: ORIGIN, rpId: RP_ID, counter: 1 }))
    await refusedWith('a counter that stands still', authenticator.get(await loginOptions(app), { origin: ORIGIN, rpId: RP_ID, counter: before! }))
    t.equal(await storedCounter(app, authenticator.id), before, 'a refused sign-in moves nothing')

    const reasons = await passkeyFailures(app, frank.id)
    t.ok(reasons.includes('counter_went_backwards'), 'the audit log names the cloned key')
    t.ok(reasons.includes('challenge'), 'and the used or expired challenge')

    await refusedWith('an unknown passkey', new SoftAuthenticator().get(await loginOptions(app), { origin: ORIGIN, rpId: RP_ID }))
    t.ok((await passkeyFailures(app, null)).includes('unknown_credential'))
    const invalid = await finishLogin(app, { id: 'x' })
    t.equal(invalid.statusCode, 400, 'a malformed response is bad input')
    const metrics = await app.metrics.registry.getSingleMetricAsString('auth_passkey_ceremonies_total')
    t.match(metrics, /auth_passkey_ceremonies_total\{ceremony="authentication",outcome="failure"\} [1-9]/)
  })

  t.test('another user\'s credential id is refused: a sign-in naming it, whichever user handle, starts no session; registering it again is refused', async (t) => {
    const henry = await signIn(app)
    const iris = await signIn(app)
    const henrys = await addPasskey(app, henry, 'Henry\'s laptop')
    const iriss = await addPasskey(app, iris, 'Iris\'s phone')
    const sessionCounts = async () => Promise.all([henry.id, iris.id].map(async (userId) =>
      (await app.db.select({ n: count() }).from(sessions).where(eq(sessions.userId, userId)))[0]?.n))
    const sessionsBefore = await sessionCounts()

    // Henry's authenticator signs, and its answer names Iris's credential. Its counter is above
    // Iris's stored one, so only the user handle or the key can be what refuses it.
    const claimingIris = async (label: string, userHandle: string | undefined) => {
      const signed = henrys.authenticator.get(await loginOptions(app), { origin: ORIGIN, rpId: RP_ID, counter: (await storedCounter(app, iriss.authenticator.id))! + 1 })
      const forged = { ...signed, id: iriss.authenticator.id, rawId: iriss.authenticator.id, response: { ...signed.response, userHandle } }
      const answer = await finishLogin(app, forged)
      t.equal(answer.statusCode, 401, `${label}: 401`)
      t.equal(answer.json().code, 'PASSKEY_INVALID', label)
      t.notOk(answer.headers['set-cookie'], `${label}: no cookie`)
    }
    await claimingIris('with Henry\'s user handle', henrys.authenticator.userHandle)
    await claimingIris('with Iris\'s user handle', iriss.authenticator.userHandle)
    await claimingIris('with no user handle', undefined)
    t.same(await sessionCounts(), sessionsBefore, 'no session started for either')
    // Held against the passkey's owner, whose account is the one being tried.
    t.same((await passkeyFailures(app, iris.id)).sort(), ['signature', 'signature', 'user_handle'], 'audited: the handle names someone else, or the key is not Iris\'s')
    t.same(await passkeyFailures(app, henry.id), [], 'nothing against Henry')

    const irisRow = async () => app.db.select({ userId: passkeys.userId, publicKey: passkeys.publicKey, name: passkeys.name }).from(passkeys).where(eq(passkeys.credentialId, iriss.authenticator.id))
    const before = await irisRow()
    // Henry registers an authenticator (a key of its own) that claims Iris's credential id.
    const claiming = new SoftAuthenticator({ credentialId: iriss.authenticator.id })
    const duplicate = await finishRegistration(app, henry.cookies, claiming.create(await registrationOptions(app, henry.cookies), { origin: ORIGIN }), 'Not mine')
    t.equal(duplicate.statusCode, 401)
    t.equal(duplicate.json().code, 'PASSKEY_INVALID')
    t.same(await irisRow(), before, 'Iris\'s passkey is still hers, with her key')
    t.match(before, [{ userId: iris.id, name: 'Iris\'s phone' }])
    const henrysList = await app.inject({ method: 'GET', url: '/api/auth/passkeys', cookies: henry.cookies })
    t.same(henrysList.json().items.map((item: { name: string }) => item.name), ['Henry\'s laptop'], 'Henry got nothing')
    const added = await app.db.select({ detail: auditEvents.detail }).from(auditEvents).where(and(eq(auditEvents.type, 'passkey_added'), eq(auditEvents.userId, henry.id)))
    t.same(added.map((row) => row.detail.name), ['Henry\'s laptop'], 'and no passkey_added for it')

    const irisIn = await signInWith(app, iriss.authenticator)
    t.equal(irisIn.json().user?.id, iris.id, 'Iris\'s passkey still signs Iris in')
    const henryIn = await signInWith(app, henrys.authenticator)
    t.equal(henryIn.json().user?.id, henry.id, 'and Henry\'s signs Henry in')
  })

  t.test('a ceremony begun on one instance finishes on another: the challenge is in the database, used once for all', async (t) => {
    // A second instance of the same deployment (same secrets, same relying party). On Postgres it
    // has its own pool; the embedded PGlite belongs to one process, so there the two share it.
    const other = await buildApp({
      config: Object.freeze({ ...app.config, migrateOnStart: false }),
      ...(app.config.databaseUrl === undefined ? { database: app.database } : {}),
      pressure: { maxEventLoopDelay: 0 },
    })
    t.teardown(() => other.close())
    await other.ready()
    const jane = await signIn(app)

    const options = await registrationOptions(app, jane.cookies)
    const authenticator = new SoftAuthenticator()
    const registered = await finishRegistration(other, jane.cookies, authenticator.create(options, { origin: ORIGIN }))
    t.equal(registered.statusCode, 201, 'registration: options from one instance, finished on the other')
    // Another authenticator answering the same options: only the used challenge can refuse it.
    const reused = await finishRegistration(app, jane.cookies, new SoftAuthenticator().create(options, { origin: ORIGIN }))
    t.equal(reused.statusCode, 401, 'the challenge used on the other instance is used here too')
    t.equal(reused.json().code, 'PASSKEY_INVALID')
    const list = await app.inject({ method: 'GET', url: '/api/auth/passkeys', cookies: jane.cookies })
    t.same(list.json().items.map((item: { id: string }) => item.id), [registered.json().passkey.id], 'one passkey')

    const login = await loginOptions(app)
    const signedIn = await finishLogin(other, authenticator.get(login, { origin: ORIGIN, rpId: RP_ID }))
    t.equal(signedIn.statusCode, 200, 'sign-in: options from one instance, finished on the other')
    t.equal(signedIn.json().user?.id, jane.id)
    // A fresh signature with a higher counter over the same challenge: again only the challenge is used.
    const again = await finishLogin(app, authenticator.get(login, { origin: ORIGIN, rpId: RP_ID }))
    t.equal(again.statusCode, 401, 'its challenge cannot sign in again on the first')
    t.equal(again.json().code, 'PASSKEY_INVALID')
    t.notOk(again.headers['set-cookie'])
    t.same(await passkeyFailures(app, jane.id), ['challenge'], 'refused for the used challenge alone')
  })

  t.test('a passkey satisfies MFA_REQUIRED_ROLES, and an admin without one may still add it', async (t) => {
    const admin = await signIn(app, { role: 'admin' })
    const before = await app.inject({ method: 'GET', url: '/api/tasks', cookies: admin.cookies })
    t.equal(before.statusCode, 403)
    t.equal(before.json().code, 'MFA_ENROLMENT_REQUIRED')
    const { authenticator } = await addPasskey(app, admin)
    t.equal((await app.inject({ method: 'GET', url: '/api/tasks', cookies: admin.cookies })).statusCode, 200, 'the next request passes')
    const signedIn = await signInWith(app, authenticator)
    t.equal(signedIn.statusCode, 200)
    t.equal((await app.inject({ method: 'GET', url: '/api/users', cookies: cookiesFrom(signedIn) })).statusCode, 200, 'a passkey sign-in is a complete one')
  })

  t.test('a role that must have a second factor and has only a passkey: the password alone no longer signs in', async (t) => {
    const plain = await signIn(app)
    await addPasskey(app, plain)
    const ordinary = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: plain.username, password: plain.password } })
    t.equal(ordinary.json().user?.username, plain.username, 'for a role without the rule, a passkey is another way in and the password stays one')
    const admin = await signIn(app, { role: 'admin' })
    const { authenticator } = await addPasskey(app, admin)
    const byPassword = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: admin.username, password: admin.password } })
    t.equal(byPassword.statusCode, 200)
    t.same(byPassword.json(), { mfaRequired: true, methods: ['passkey'] }, 'the passkey is asked for')
    t.notOk(byPassword.headers['set-cookie'], 'no session cookie, no pending sign-in')
    const bearer = await app.inject({ method: 'POST', url: '/api/auth/token', payload: { username: admin.username, password: admin.password } })
    t.same(bearer.json(), { mfaRequired: true, methods: ['passkey'] }, 'and a Bearer client, which cannot use it, gets no token')
    const wrong = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: admin.username, password: 'not-the-password' } })
    t.equal(wrong.statusCode, 401, 'a wrong password still says nothing of the passkey')
    t.equal((await signInWith(app, authenticator)).statusCode, 200, 'the passkey signs in')
  })

  t.test('failures with a known passkey count against its account: then even the right one gets 429', async (t) => {
    const gina = await signIn(app)
    const { authenticator } = await addPasskey(app, gina)
    const { privateKey: otherKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    for (let i = 0; i < 10; i++) {
      const answer = await finishLogin(app, authenticator.get(await loginOptions(app), { origin: ORIGIN, rpId: RP_ID, signingKey: otherKey }))
      t.equal(answer.statusCode, 401)
    }
    const limited = await signInWith(app, authenticator)
    t.equal(limited.statusCode, 429, 'the right passkey gets the same 429')
    t.equal(limited.json().code, 'RATE_LIMITED')
    t.ok(Number(limited.headers['retry-after']) > 0)
  })

  t.test('the passkey sign-in is limited per address like /login', async (t) => {
    // Another address than the allow-listed loopback one.
    const remoteAddress = '192.0.2.7'
    let last = 0
    for (let i = 0; i < 31 && last !== 429; i++) {
      last = (await app.inject({ method: 'POST', url: '/api/auth/passkeys/login/options', payload: {}, remoteAddress })).statusCode
    }
    t.equal(last, 429, 'the 31st challenge in a minute is refused')
    const login = await app.inject({ method: 'POST', url: '/api/auth/passkeys/login', payload: { response: new SoftAuthenticator().get({ challenge: 'x'.repeat(43) }, { origin: ORIGIN, rpId: RP_ID }) }, remoteAddress })
    t.equal(login.statusCode, 429, 'and so is the sign-in itself')
    t.equal(login.json().code, 'RATE_LIMITED')
  })
})
