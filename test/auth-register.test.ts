import t from 'tap'
import { eq, sql } from 'drizzle-orm'
import { users, auditEvents } from '../src/db/schema.js'
import { buildTestApp, STRONG_PASSWORD } from './helpers/app.js'

const app = await buildTestApp(t)
const register = (payload: unknown) => app.inject({ method: 'POST', url: '/api/auth/register', payload: payload as object })
const userCount = async () => (await app.db.select({ n: sql<number>`count(*)::int` }).from(users))[0]!.n

t.test('registering creates a user with role user and answers 201 {user}', async (t) => {
  const response = await register({ username: 'Alice_1', password: STRONG_PASSWORD })
  t.equal(response.statusCode, 201)
  const { user } = response.json()
  t.match(user, { id: /^[0-9a-f-]{36}$/, username: 'Alice_1', role: 'user', createdAt: String })
  t.same(Object.keys(user).sort(), ['createdAt', 'email', 'emailVerified', 'id', 'mfa', 'role', 'username'], 'nothing but the public fields')
  const [row] = await app.db.select().from(users).where(eq(users.id, user.id))
  t.match(row!.passwordHash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, 'argon2id with OWASP parameters')
  t.notOk(response.body.includes('argon2'), 'the hash never leaves the server')
  t.notOk(response.headers['set-cookie'], 'registering does not sign in')
})

t.test('a taken name is 409 whatever its letter case', async (t) => {
  await register({ username: 'bob.smith', password: STRONG_PASSWORD })
  const before = await userCount()
  const response = await register({ username: 'BOB.Smith', password: STRONG_PASSWORD })
  t.equal(response.statusCode, 409)
  t.equal(response.json().code, 'USERNAME_TAKEN')
  t.equal(await userCount(), before, 'no row added')
})

t.test('bad registrations are 400 in the error shape and change nothing', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['self-chosen role', { username: 'mallory', password: STRONG_PASSWORD, role: 'admin' }],
    ['unknown field', { username: 'mallory', password: STRONG_PASSWORD, isAdmin: true }],
    ['username too short', { username: 'ab', password: STRONG_PASSWORD }],
    ['username too long', { username: 'a'.repeat(33), password: STRONG_PASSWORD }],
    ['username with a space', { username: 'mal lory', password: STRONG_PASSWORD }],
    ['username with a NUL', { username: 'mal\u0000lory', password: STRONG_PASSWORD }],
    ['password too short', { username: 'mallory', password: 'Short1!' }],
    ['password too long', { username: 'mallory', password: 'x'.repeat(257) }],
    ['common password', { username: 'mallory', password: 'password123' }],
    ['common password in other case', { username: 'mallory', password: 'PASSWORD123' }],
    ['password not a string', { username: 'mallory', password: 12345678 }],
    ['missing password', { username: 'mallory' }],
    ['array body', [1, 2]],
  ]
  const before = await userCount()
  for (const [label, payload] of cases) {
    const response = await register(payload)
    t.equal(response.statusCode, 400, label)
    t.match(response.json(), { statusCode: 400, error: 'Bad Request', message: String, code: String }, `${label}: error shape`)
  }
  t.equal(await userCount(), before, 'no user was created')
})

t.test('a password is taken exactly as sent: no trimming, no case folding', async (t) => {
  const password = '  Exact Password 9  '
  t.equal((await register({ username: 'exacting', password })).statusCode, 201)
  const login = (p: string) => app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'exacting', password: p } })
  t.equal((await login(password)).statusCode, 200)
  t.equal((await login(password.trim())).statusCode, 401)
  t.equal((await login(password.toLowerCase())).statusCode, 401)
})

t.test('malformed JSON is 400, another content type 415, a body over 1 MiB 413', async (t) => {
  const before = await userCount()
  const broken = await app.inject({ method: 'POST', url: '/api/auth/register', headers: { 'content-type': 'application/json' }, payload: '{"username":' })
  t.equal(broken.statusCode, 400)
  const text = await app.inject({ method: 'POST', url: '/api/auth/register', headers: { 'content-type': 'text/plain' }, payload: 'username=a' })
  t.equal(text.statusCode, 415)
  const form = await app.inject({ method: 'POST', url: '/api/auth/register', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'username=a' })
  t.equal(form.statusCode, 415)
  const huge = await register({ username: 'huge', password: 'x'.repeat(1024 * 1024 + 10) })
  t.equal(huge.statusCode, 413)
  t.equal(await userCount(), before)
})

t.test('registration is audited', async (t) => {
  const { user } = (await register({ username: 'audited', password: STRONG_PASSWORD })).json()
  const events = await app.db.select().from(auditEvents).where(eq(auditEvents.userId, user.id))
  t.match(events, [{ type: 'register', actorId: user.id }])
})
