import t from 'tap'
import { and, eq, sql } from 'drizzle-orm'
import { auditEvents, oneTimeSecrets, users } from '../src/db/schema.js'
import { buildTestApp, cookiesFrom, setCookieLines, signIn } from './helpers/app.js'
import { enrolTotp, nextStep, passwordStep, roomInStep, totpCode, verifyCode } from './helpers/mfa.js'

// Real time steps throughout: the app reads the clock itself; the test computes each code from the
// secret the app gave out, as a phone would.

// Many sign-ins from one test address: the per-address limits are not what this file tests (the
// per-account limit on wrong codes still applies; see mfa-policy.test.ts).
const app = await buildTestApp(t, { rateLimitAllowList: ['127.0.0.1'] })
const PENDING = '__Secure-mfa_pending'

async function auditTypes (userId: string) {
  const rows = await app.db.select({ type: auditEvents.type }).from(auditEvents).where(eq(auditEvents.userId, userId))
  return rows.map((row) => row.type)
}

async function sessionMethods (cookies: Record<string, string>) {
  const listed = await app.inject({ method: 'GET', url: '/api/auth/sessions', cookies })
  return (listed.json().items as Array<{ method: string, current: boolean }>).filter((item) => item.current).map((item) => item.method)
}

t.test('enrolment: the password first, then a code, then TOTP is on with 10 recovery codes', async (t) => {
  const alice = await signIn(app)
  const wrongPassword = await app.inject({ method: 'POST', url: '/api/auth/mfa/totp', cookies: alice.cookies, payload: { currentPassword: 'not-the-password' } })
  t.equal(wrongPassword.statusCode, 401)
  t.equal(wrongPassword.json().code, 'BAD_CREDENTIALS')
  const nothing = await app.inject({ method: 'POST', url: '/api/auth/mfa/totp/confirm', cookies: alice.cookies, payload: { code: '123456' } })
  t.equal(nothing.statusCode, 409, 'nothing to confirm before an enrolment starts')

  const started = await app.inject({ method: 'POST', url: '/api/auth/mfa/totp', cookies: alice.cookies, payload: { currentPassword: alice.password } })
  t.equal(started.statusCode, 201)
  const { secret, otpauthUrl } = started.json()
  t.match(secret, /^[A-Z2-7]{32}$/, 'a base32 secret of 160 bits')
  t.match(otpauthUrl, /^otpauth:\/\/totp\//)
  t.ok(new URL(otpauthUrl).searchParams.get('secret') === secret)
  const beforeConfirm = await app.inject({ method: 'GET', url: '/api/auth/me', cookies: alice.cookies })
  t.equal(beforeConfirm.json().user.mfa, false, 'not a factor until confirmed')
  t.equal((await passwordStep(app, alice)).response.json().user?.id, alice.id, 'an unconfirmed enrolment does not change sign-in')

  await roomInStep()
  const wrong = await app.inject({ method: 'POST', url: '/api/auth/mfa/totp/confirm', cookies: alice.cookies, payload: { code: totpCode(secret, 3) } })
  t.equal(wrong.statusCode, 401)
  t.equal(wrong.json().code, 'MFA_INVALID')
  const badShape = await app.inject({ method: 'POST', url: '/api/auth/mfa/totp/confirm', cookies: alice.cookies, payload: { code: '12345' } })
  t.equal(badShape.statusCode, 400)

  const confirmed = await app.inject({ method: 'POST', url: '/api/auth/mfa/totp/confirm', cookies: alice.cookies, payload: { code: totpCode(secret) } })
  t.equal(confirmed.statusCode, 200)
  const codes = confirmed.json().recoveryCodes as string[]
  t.equal(codes.length, 10)
  t.equal(new Set(codes).size, 10)
  for (const code of codes) t.match(code, /^[0-9a-z]{4}(-[0-9a-z]{4}){5}$/)

  const state = await app.inject({ method: 'GET', url: '/api/auth/mfa', cookies: alice.cookies })
  t.same(state.json(), { totp: true, passkeys: 0, recoveryCodesLeft: 10, required: false })
  t.equal((await app.inject({ method: 'GET', url: '/api/auth/me', cookies: alice.cookies })).json().user.mfa, true)
  const again = await app.inject({ method: 'POST', url: '/api/auth/mfa/totp', cookies: alice.cookies, payload: { currentPassword: alice.password } })
  t.equal(again.statusCode, 409, 'a second enrolment while on is refused')
  t.same((await auditTypes(alice.id)).filter((type) => type.startsWith('mfa')).sort(), ['mfa_enabled', 'mfa_failed'])
})

t.test('/login with TOTP on: a pending sign-in, then a right code starts the session', async (t) => {
  const bob = await signIn(app)
  const { secret } = await enrolTotp(app, bob)

  const { response, cookies } = await passwordStep(app, bob)
  t.equal(response.statusCode, 200)
  t.same(response.json(), { mfaRequired: true, methods: ['totp', 'recovery_code'] })
  t.notOk(cookies['__Host-access_token'], 'no session yet')
  t.notOk(cookies['__Secure-refresh_token'])
  const pendingLine = setCookieLines(response).find((line) => line.startsWith(`${PENDING}=`))
  t.ok(pendingLine)
  for (const attribute of ['HttpOnly', 'Secure', 'SameSite=None', 'Partitioned', 'Path=/api/auth', 'Max-Age=300']) {
    t.ok(pendingLine!.split('; ').includes(attribute), `pending cookie has ${attribute}`)
  }

  await roomInStep()
  const wrong = await verifyCode(app, cookies, { code: totpCode(secret, 2) })
  t.equal(wrong.statusCode, 401)
  t.equal(wrong.json().code, 'MFA_INVALID', 'two steps ahead is a wrong code')
  t.notOk(cookiesFrom(wrong)['__Host-access_token'])

  const right = await verifyCode(app, cookies, { code: totpCode(secret) })
  t.equal(right.statusCode, 200)
  t.equal(right.json().user.id, bob.id)
  t.equal(right.json().user.mfa, true)
  const signedIn = cookiesFrom(right, cookies)
  t.ok(signedIn['__Host-access_token'])
  t.ok(signedIn['__Secure-refresh_token'])
  t.notOk(signedIn[PENDING], 'the pending cookie is cleared')
  t.same(await sessionMethods(signedIn), ['password+totp'])

  const reused = await verifyCode(app, cookies, { code: totpCode(secret, 1) })
  t.equal(reused.statusCode, 401)
  t.equal(reused.json().code, 'MFA_PENDING_INVALID', 'a pending sign-in is single use')

  // The same code on a fresh pending sign-in: its time step was used.
  const second = await passwordStep(app, bob)
  const replayed = await verifyCode(app, second.cookies, { code: totpCode(secret) })
  t.equal(replayed.statusCode, 401)
  t.equal(replayed.json().code, 'MFA_INVALID', 'a replayed code is refused')
  const next = await verifyCode(app, second.cookies, { code: totpCode(secret, 1) })
  t.equal(next.statusCode, 200, "the next step's code is accepted")
  const third = await passwordStep(app, bob)
  const older = await verifyCode(app, third.cookies, { code: totpCode(secret) })
  t.equal(older.json().code, 'MFA_INVALID', 'a step older than the last accepted one is refused')
  t.ok((await auditTypes(bob.id)).includes('mfa_failed'))
})

t.test("the previous step's code is accepted (after waiting for the next step)", async (t) => {
  const carol = await signIn(app)
  const { secret } = await enrolTotp(app, carol) // confirmed with step T-1
  await nextStep() // now T+1: the previous step is T, never used
  await roomInStep()
  const { cookies } = await passwordStep(app, carol)
  const previous = await verifyCode(app, cookies, { code: totpCode(secret, -1) })
  t.equal(previous.statusCode, 200)
})

t.test('the same code twice at once: exactly one sign-in wins', async (t) => {
  const dave = await signIn(app)
  const { secret } = await enrolTotp(app, dave)
  const [first, second] = await Promise.all([passwordStep(app, dave), passwordStep(app, dave)])
  await roomInStep()
  const code = totpCode(secret)
  const answers = await Promise.all([verifyCode(app, first.cookies, { code }), verifyCode(app, second.cookies, { code })])
  t.same(answers.map((answer) => answer.statusCode).sort(), [200, 401])
  t.equal(answers.find((answer) => answer.statusCode === 401)!.json().code, 'MFA_INVALID')
})

t.test('recovery codes: each works once, also when sent twice at once', async (t) => {
  const erin = await signIn(app)
  const { recoveryCodes } = await enrolTotp(app, erin)
  const [code1, code2] = recoveryCodes as [string, string]

  const first = await passwordStep(app, erin)
  const used = await verifyCode(app, first.cookies, { recoveryCode: code1.toUpperCase().replaceAll('-', ' ') })
  t.equal(used.statusCode, 200, 'case and separators do not matter')
  t.same(await sessionMethods(cookiesFrom(used, first.cookies)), ['recovery_code'])
  t.ok((await auditTypes(erin.id)).includes('recovery_code_used'))

  const again = await passwordStep(app, erin)
  const twice = await verifyCode(app, again.cookies, { recoveryCode: code1 })
  t.equal(twice.statusCode, 401)
  t.equal(twice.json().code, 'MFA_INVALID', 'a used recovery code is gone')

  const [a, b] = await Promise.all([passwordStep(app, erin), passwordStep(app, erin)])
  const racing = await Promise.all([verifyCode(app, a.cookies, { recoveryCode: code2 }), verifyCode(app, b.cookies, { recoveryCode: code2 })])
  t.same(racing.map((answer) => answer.statusCode).sort(), [200, 401], 'one winner')
  const state = await app.inject({ method: 'GET', url: '/api/auth/mfa', cookies: cookiesFrom(used, first.cookies) })
  t.equal(state.json().recoveryCodesLeft, 8)
})

t.test('the 6th wrong code finds the pending sign-in dead', async (t) => {
  const frank = await signIn(app)
  const { secret } = await enrolTotp(app, frank)
  const { cookies } = await passwordStep(app, frank)
  for (let attempt = 1; attempt <= 5; attempt++) {
    const wrong = await verifyCode(app, cookies, { code: totpCode(secret) === '000000' ? '111111' : '000000' })
    t.equal(wrong.json().code, 'MFA_INVALID', `wrong code ${attempt}`)
  }
  await roomInStep()
  const sixth = await verifyCode(app, cookies, { code: totpCode(secret) })
  t.equal(sixth.statusCode, 401)
  t.equal(sixth.json().code, 'MFA_PENDING_INVALID', 'even the right code cannot revive it')
  t.notOk(cookiesFrom(sixth)['__Host-access_token'])
})

t.test('an expired pending sign-in is refused', async (t) => {
  const gina = await signIn(app)
  const { secret } = await enrolTotp(app, gina)
  const { cookies } = await passwordStep(app, gina)
  // Five minutes pass: move the expiry rather than wait.
  await app.db.update(oneTimeSecrets).set({ expiresAt: sql`now() - interval '1 second'` })
    .where(and(eq(oneTimeSecrets.userId, gina.id), eq(oneTimeSecrets.kind, 'mfa_pending')))
  await roomInStep()
  const late = await verifyCode(app, cookies, { code: totpCode(secret) })
  t.equal(late.statusCode, 401)
  t.equal(late.json().code, 'MFA_PENDING_INVALID')
  const none = await verifyCode(app, {}, { code: totpCode(secret) })
  t.equal(none.json().code, 'MFA_PENDING_INVALID', 'no pending cookie at all')
  t.equal((await verifyCode(app, { [PENDING]: 'made-up' }, { code: '123456' })).json().code, 'MFA_PENDING_INVALID')
})

t.test("/token's two steps: mfa_token, then a Bearer token", async (t) => {
  const hugo = await signIn(app)
  const { secret } = await enrolTotp(app, hugo)
  const step1 = await app.inject({ method: 'POST', url: '/api/auth/token', payload: { username: hugo.username, password: hugo.password } })
  t.equal(step1.statusCode, 200)
  t.equal(step1.json().mfaRequired, true)
  t.same(step1.json().methods, ['totp', 'recovery_code'])
  t.type(step1.json().mfa_token, 'string')
  t.notOk(step1.json().access_token)
  t.same(setCookieLines(step1), [], 'no cookie for a Bearer client')
  const mfaToken = step1.json().mfa_token as string

  const asCookie = await verifyCode(app, { [PENDING]: mfaToken }, { code: '123456' })
  t.equal(asCookie.json().code, 'MFA_PENDING_INVALID', "a Bearer client's pending sign-in is not a browser's")

  await roomInStep()
  const step2 = await app.inject({ method: 'POST', url: '/api/auth/mfa/verify', payload: { mfa_token: mfaToken, code: totpCode(secret) } })
  t.equal(step2.statusCode, 200)
  t.equal(step2.json().token_type, 'Bearer')
  t.same(setCookieLines(step2), [])
  const me = await app.inject({ method: 'GET', url: '/api/auth/me', headers: { authorization: `Bearer ${step2.json().access_token}` } })
  t.equal(me.json().user.id, hugo.id)
  const sessions = await app.inject({ method: 'GET', url: '/api/auth/sessions', headers: { authorization: `Bearer ${step2.json().access_token}` } })
  t.same(sessions.json().items.filter((item: { current: boolean }) => item.current).map((item: { method: string }) => item.method), ['password+totp'])
  const reused = await app.inject({ method: 'POST', url: '/api/auth/mfa/verify', payload: { mfa_token: mfaToken, code: totpCode(secret, 1) } })
  t.equal(reused.json().code, 'MFA_PENDING_INVALID')
})

t.test('disable and new recovery codes need the current password and a code', async (t) => {
  const ida = await signIn(app)
  const { secret, recoveryCodes } = await enrolTotp(app, ida)
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, cookies: ida.cookies, payload })

  const badPassword = await post('/api/auth/mfa/recovery-codes', { currentPassword: 'wrong-password', code: recoveryCodes[0]! })
  t.equal(badPassword.json().code, 'BAD_CREDENTIALS')
  const badCode = await post('/api/auth/mfa/recovery-codes', { currentPassword: ida.password, code: 'aaaa-bbbb-cccc-dddd-eeee-ffff' })
  t.equal(badCode.json().code, 'MFA_INVALID')
  const fresh = await post('/api/auth/mfa/recovery-codes', { currentPassword: ida.password, code: recoveryCodes[0]! })
  t.equal(fresh.statusCode, 200)
  const newCodes = fresh.json().recoveryCodes as string[]
  t.equal(newCodes.length, 10)
  const { cookies } = await passwordStep(app, ida)
  t.equal((await verifyCode(app, cookies, { recoveryCode: recoveryCodes[1]! })).json().code, 'MFA_INVALID', 'the old codes are void')
  t.ok((await auditTypes(ida.id)).includes('recovery_codes_regenerated'))

  await roomInStep()
  const noPassword = await post('/api/auth/mfa/totp/disable', { code: totpCode(secret) })
  t.equal(noPassword.statusCode, 400)
  const off = await post('/api/auth/mfa/totp/disable', { currentPassword: ida.password, code: totpCode(secret) })
  t.equal(off.statusCode, 204)
  t.ok((await auditTypes(ida.id)).includes('mfa_disabled'))
  const [row] = await app.db.select({ secret: users.totpSecret }).from(users).where(eq(users.id, ida.id))
  t.equal(row!.secret, null, 'the secret is gone')
  const login = await passwordStep(app, ida)
  t.equal(login.response.json().user.id, ida.id, 'a password alone signs in again')
  t.equal(login.response.json().user.mfa, false)
  const regenerate = await post('/api/auth/mfa/recovery-codes', { currentPassword: ida.password, code: newCodes[0]! })
  t.equal(regenerate.statusCode, 409, 'no TOTP, no recovery codes')
})
