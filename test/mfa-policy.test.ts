import t from 'tap'
import { randomBytes } from 'node:crypto'
import { eq, isNotNull, sql } from 'drizzle-orm'
import { generateSync } from 'otplib'
import { buildApp } from '../src/app.js'
import { auditEvents, sessions, users } from '../src/db/schema.js'
import { createSecretBox } from '../src/secret-box.js'
import { buildTestApp, promote, signIn, testConfig } from './helpers/app.js'
import { runCli } from './helpers/cli.js'
import { enrolTotp, passwordStep, roomInStep, totpCode, verifyCode } from './helpers/mfa.js'
import { redisSkip } from './helpers/tools.js'

// One app (one database) for the whole file: a new embedded database costs seconds. Admins must
// have a second factor here; the other tests use plain users, whom that does not touch.
const encryptionKey = randomBytes(32).toString('base64url')
const app = await buildTestApp(t, { mfaRequiredRoles: ['admin'], encryptionKey, rateLimitAllowList: ['127.0.0.1'] })

t.test('MFA_REQUIRED_ROLES: an admin without a factor may only enrol; a promotion counts on the next request', async (t) => {
  const alice = await signIn(app)
  const get = (url: string) => app.inject({ method: 'GET', url, cookies: alice.cookies })
  const createTask = () => app.inject({ method: 'POST', url: '/api/tasks', cookies: alice.cookies, payload: { title: 'a task' } })

  t.equal((await createTask()).statusCode, 201, 'a user needs no second factor')
  t.equal((await get('/api/tasks')).statusCode, 200)

  await promote(app, alice.id)
  for (const answer of [await get('/api/tasks'), await createTask(), await get('/api/users'), await get('/api/auth/sessions'), await get('/api/audit')]) {
    t.equal(answer.statusCode, 403)
    t.equal(answer.json().code, 'MFA_ENROLMENT_REQUIRED')
  }
  const [task] = await app.db.select({ id: sql<string>`id` }).from(sql`tasks`).where(sql`owner_id = ${alice.id}`)
  const oneTask = await get(`/api/tasks/${task!.id}`)
  t.equal(oneTask.json().code, 'MFA_ENROLMENT_REQUIRED', 'the task statements hold the rule too')
  const patch = await app.inject({ method: 'PATCH', url: `/api/tasks/${task!.id}`, cookies: alice.cookies, payload: { done: true } })
  t.equal(patch.json().code, 'MFA_ENROLMENT_REQUIRED')
  const remove = await app.inject({ method: 'DELETE', url: `/api/tasks/${task!.id}`, cookies: alice.cookies })
  t.equal(remove.json().code, 'MFA_ENROLMENT_REQUIRED')
  t.equal((await app.db.select({ id: sql<string>`id` }).from(sql`tasks`).where(sql`owner_id = ${alice.id}`)).length, 1, 'a refused delete changes nothing')

  t.equal((await get('/api/auth/me')).statusCode, 200, '/me still answers')
  const state = await get('/api/auth/mfa')
  t.equal(state.statusCode, 200)
  t.same(state.json(), { totp: false, passkeys: 0, recoveryCodesLeft: 0, required: true })

  await enrolTotp(app, alice)
  t.equal((await get('/api/tasks')).statusCode, 200, 'with TOTP on, everything opens')
  t.equal((await get('/api/users')).statusCode, 200)

  const logout = await app.inject({ method: 'POST', url: '/api/auth/logout', cookies: alice.cookies })
  t.equal(logout.statusCode, 204)
})

t.test('an admin who must enrol can still sign out first', async (t) => {
  const bob = await signIn(app, { role: 'admin' })
  t.equal((await app.inject({ method: 'GET', url: '/api/tasks', cookies: bob.cookies })).json().code, 'MFA_ENROLMENT_REQUIRED')
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/logout', cookies: bob.cookies })).statusCode, 204)
})

t.test('a database copy holds no usable TOTP secret, and no recovery code', async (t) => {
  const carol = await signIn(app)
  const { secret, recoveryCodes } = await enrolTotp(app, carol)
  const raw = Buffer.from(secret.replace(/=+$/, '').split('').map((c) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'.indexOf(c).toString(2).padStart(5, '0')).join('').match(/.{8}/g)!.map((bits) => parseInt(bits, 2)))
  // Every table, every row, as text: what a stolen backup would hold.
  const tables = await app.db.select({ name: sql<string>`table_name` }).from(sql`information_schema.tables`).where(sql`table_schema = 'public'`)
  t.ok(tables.length >= 6)
  let dump = ''
  for (const { name } of tables) {
    const rows = await app.db.select({ row: sql<string>`row_to_json(t)::text` }).from(sql`${sql.identifier(name)} t`)
    dump += rows.map((row) => row.row).join('\n')
  }
  t.match(dump, /recovery_codes|code_hash/, 'the dump has the MFA tables')
  for (const form of [secret, secret.toLowerCase(), raw.toString('hex'), raw.toString('base64'), raw.toString('base64url')]) {
    t.notOk(dump.includes(form), 'the secret is not in the dump in any plain encoding')
  }
  for (const code of recoveryCodes) t.notOk(dump.includes(code.replaceAll('-', '')) || dump.includes(code))
  const [row] = await app.db.select({ sealed: users.totpSecret }).from(users).where(eq(users.id, carol.id))
  t.match(row!.sealed, /^v1\./, 'sealed')
  // Without ENCRYPTION_KEY the sealed value opens with no other key.
  t.throws(() => createSecretBox('another-key-of-at-least-32-bytes!!').open(row!.sealed!, carol.id))
  t.equal(app.secretBox.open(row!.sealed!, carol.id), secret, 'with the key it opens')
  t.throws(() => app.secretBox.open(row!.sealed!, '00000000-0000-4000-8000-000000000000'), 'bound to its user')
})

t.test('the secret box: a rotated key still opens old values until re-sealed', async (t) => {
  const oldBox = createSecretBox('old-key-old-key-old-key-old-key-old')
  const sealed = oldBox.seal('JBSWY3DPEHPK3PXP', 'u1')
  const rotated = createSecretBox('new-key-new-key-new-key-new-key-new', ['old-key-old-key-old-key-old-key-old'])
  t.equal(rotated.open(sealed, 'u1'), 'JBSWY3DPEHPK3PXP')
  t.ok(rotated.isStale(sealed))
  t.notOk(rotated.isStale(rotated.seal('x', 'u1')))
  t.not(oldBox.seal('same', 'u1'), oldBox.seal('same', 'u1'), 'a fresh nonce each time')
  const tampered = sealed.slice(0, -2) + (sealed.endsWith('A') ? 'B' : 'A') + sealed.slice(-1)
  t.throws(() => oldBox.open(tampered, 'u1'))
})

t.test('mfa-reset (CLI): TOTP off, sessions ended, audited', async (t) => {
  const dave = await signIn(app)
  await enrolTotp(app, dave)
  const { code, out } = await runCli(app.database, ['mfa-reset', dave.username])
  t.equal(code, 0)
  t.match(out, /second factor reset for .+; 1 session\(s\) ended/)
  t.equal((await app.inject({ method: 'GET', url: '/api/auth/me', cookies: dave.cookies })).statusCode, 401, 'the old session is over')
  const login = await passwordStep(app, dave)
  t.equal(login.response.json().user.mfa, false, 'the password alone signs in; the user enrols again')
  const audit = await app.db.select().from(auditEvents).where(eq(auditEvents.userId, dave.id))
  t.ok(audit.some((event) => event.type === 'mfa_disabled' && event.detail.by === 'cli'))
  t.equal((await runCli(app.database, ['mfa-reset', 'nobody_here'])).code, 1)
})

t.test('reencrypt-secrets (CLI): after a key rotation every secret is sealed with the new key', async (t) => {
  const oldKey = encryptionKey
  const newKey = randomBytes(32).toString('base64url')
  const gina = await signIn(app)
  const { secret } = await enrolTotp(app, gina)
  const run = (env: Record<string, string>) => runCli(app.database, ['reencrypt-secrets'], '', { DATA_DIR: 'memory://', ...env })
  t.equal((await run({ ENCRYPTION_KEY: newKey })).code, 1, 'without the old key the secrets cannot be opened: refused, nothing changed')
  const sealedSecrets = (await app.db.select({ id: users.id }).from(users).where(isNotNull(users.totpSecret))).length
  const first = await run({ ENCRYPTION_KEY: newKey, ENCRYPTION_PREVIOUS_KEYS: oldKey })
  t.equal(first.code, 0)
  t.match(first.out, new RegExp(`^${sealedSecrets} TOTP secret\\(s\\) re-sealed`, 'm'), 'every secret in the database')
  const [row] = await app.db.select({ sealed: users.totpSecret }).from(users).where(eq(users.id, gina.id))
  t.equal(createSecretBox(newKey).open(row!.sealed!, gina.id), secret, 'the new key alone opens it')
  t.throws(() => createSecretBox(oldKey).open(row!.sealed!, gina.id), 'the old key no longer does')
  const second = await run({ ENCRYPTION_KEY: newKey, ENCRYPTION_PREVIOUS_KEYS: oldKey })
  t.equal(second.code, 0)
  t.match(second.out, /^0 TOTP secret\(s\) re-sealed/m, 'a second run has nothing to do')
})

t.test('wrong codes are limited per account across two instances sharing Redis', { skip: await redisSkip(t) }, async (t) => {
  // Two instances of one deployment share the database, Redis and ENCRYPTION_KEY.
  const instance = async () => {
    const instance = await buildApp({
      // The shared database is migrated already: these instances start as production ones do.
      config: testConfig({ encryptionKey, migrateOnStart: false, redisUrl: 'redis://127.0.0.1:6379', rateLimitAllowList: ['127.0.0.1'] }),
      database: app.database,
      pressure: { maxEventLoopDelay: 0 },
    })
    t.teardown(() => instance.close())
    await instance.ready()
    return instance
  }
  const first = await instance()
  const second = await instance()
  const erin = await signIn(first)
  const { secret } = await enrolTotp(first, erin)
  const wrong = () => (totpCode(secret) === '000000' ? '111111' : '000000')

  // Ten wrong codes, alternating instances and pending sign-ins (each pending sign-in dies at 5).
  let failures = 0
  for (let round = 0; round < 2; round++) {
    const { cookies } = await passwordStep(first, erin)
    for (let attempt = 0; attempt < 5; attempt++) {
      const answer = await verifyCode(attempt % 2 === 0 ? first : second, cookies, { code: wrong() })
      if (answer.json().code === 'MFA_INVALID') failures++
    }
  }
  t.equal(failures, 10)
  // Wrong codes count with the account's other failures (API.md, "Rate limits and lockout"): the
  // account is now limited on both instances, the right password included, with no oracle.
  const limited = await passwordStep(second, erin)
  t.equal(limited.response.statusCode, 429, 'over the limit, the right password gets a 429 on the other instance')
  t.equal(limited.response.json().code, 'RATE_LIMITED')
  t.ok(Number(limited.response.headers['retry-after']) > 0)
  t.notOk(limited.cookies['__Secure-mfa_pending'], 'no pending sign-in is started')
  const fromFirst = await passwordStep(first, erin)
  t.equal(fromFirst.response.statusCode, 429)
  t.equal((await first.db.select().from(sessions).where(eq(sessions.userId, erin.id))).length, 1, 'no session was started')
  // Another account is not affected.
  const frank = await signIn(second)
  const frankTotp = await enrolTotp(second, frank)
  const frankPending = await passwordStep(first, frank)
  await roomInStep()
  t.equal((await verifyCode(first, frankPending.cookies, { code: generateSync({ secret: frankTotp.secret }) })).statusCode, 200)
})
