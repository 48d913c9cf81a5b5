import t from 'tap'
import { createSign, generateKeyPairSync } from 'node:crypto'
import { eq } from 'drizzle-orm'
import { users } from '../src/db/schema.js'
import { buildTestApp, signIn } from './helpers/app.js'
import { decodePayload, forgeToken, unsignedToken } from './helpers/jwt.js'

const SECRET = 'a-test-secret-that-is-long-enough-0123456789'
const OLD_SECRET = 'an-older-secret-still-honoured-for-a-while-987'
const app = await buildTestApp(t, { jwtSecret: SECRET, jwtPreviousSecrets: [OLD_SECRET] })
const alice = await signIn(app)
const aliceToken = alice.cookies['__Host-access_token']!
const claims = decodePayload(aliceToken)
const now = Math.floor(Date.now() / 1000)

const ATTACKER_KEY = 'attacker-key-attacker-key-attacker-key!!'

/** RS256 signed with a key the attacker made, its public half embedded in the `jwk` header. */
function rsaTokenWithEmbeddedKey (payload: Record<string, unknown>): string {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const body = `${b64({ alg: 'RS256', typ: 'JWT', jwk: publicKey.export({ format: 'jwk' }) })}.${b64(payload)}`
  return `${body}.${createSign('RSA-SHA256').update(body).sign(privateKey).toString('base64url')}`
}

/** The same request with the token in the cookie, then in the Authorization header. */
async function bothWays (token: string) {
  const viaCookie = await app.inject({ url: '/api/auth/me', cookies: { '__Host-access_token': token } })
  const viaHeader = await app.inject({ url: '/api/auth/me', headers: { authorization: `Bearer ${token}` } })
  return [viaCookie, viaHeader] as const
}

t.test('a genuine token works from the cookie and from the Authorization header', async (t) => {
  for (const response of await bothWays(aliceToken)) t.equal(response.statusCode, 200)
})

t.test('forged and broken tokens are refused with 401 from cookie and header alike', async (t) => {
  const [header, payload] = aliceToken.split('.')
  const forgeries: Array<[string, string, string]> = [
    ['alg none', unsignedToken({ ...claims }), 'TOKEN_INVALID'],
    ['alg none, signature kept', `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${payload}.${aliceToken.split('.')[2]}`, 'TOKEN_INVALID'],
    ['another algorithm (HS512) with the right key', forgeToken({ ...claims }, SECRET, { alg: 'HS512', typ: 'JWT' }), 'TOKEN_INVALID'],
    ['RS256 header over an HMAC', forgeToken({ ...claims }, SECRET, { alg: 'RS256', typ: 'JWT' }), 'TOKEN_INVALID'],
    ['the wrong key', forgeToken({ ...claims }, 'some-other-key-that-is-also-32-bytes-long!'), 'TOKEN_INVALID'],
    ['a kid header pointing elsewhere', forgeToken({ ...claims }, 'attacker-key-attacker-key-attacker-key!!', { alg: 'HS256', kid: '../../dev/null' }), 'TOKEN_INVALID'],
    ['a jku header', forgeToken({ ...claims }, 'attacker-key-attacker-key-attacker-key!!', { alg: 'HS256', jku: 'http://127.0.0.1:1/keys' }), 'TOKEN_INVALID'],
    ['an x5u header', forgeToken({ ...claims }, ATTACKER_KEY, { alg: 'HS256', x5u: 'http://127.0.0.1:1/cert.pem' }), 'TOKEN_INVALID'],
    ['a jwk header carrying the attacker\'s HMAC key', forgeToken({ ...claims }, ATTACKER_KEY, { alg: 'HS256', jwk: { kty: 'oct', k: Buffer.from(ATTACKER_KEY).toString('base64url') } }), 'TOKEN_INVALID'],
    ['a jwk header carrying the attacker\'s RSA key (RS256)', rsaTokenWithEmbeddedKey({ ...claims }), 'TOKEN_INVALID'],
    ['a tampered payload', `${header}.${Buffer.from(JSON.stringify({ ...claims, role: 'admin' })).toString('base64url')}.${aliceToken.split('.')[2]}`, 'TOKEN_INVALID'],
    ['expired', forgeToken({ ...claims, iat: now - 3600, exp: now - 60 }, SECRET), 'TOKEN_EXPIRED'],
    ['no exp', forgeToken(Object.fromEntries(Object.entries(claims).filter(([k]) => k !== 'exp')), SECRET), 'TOKEN_INVALID'],
    ['not an access token', forgeToken({ ...claims, typ: 'refresh' }, SECRET), 'TOKEN_INVALID'],
    ['another issuer', forgeToken({ ...claims, iss: 'someone-else' }, SECRET), 'TOKEN_INVALID'],
    ['another audience', forgeToken({ ...claims, aud: 'someone-else' }, SECRET), 'TOKEN_INVALID'],
    ['a sub that is no uuid', forgeToken({ ...claims, sub: "1' or '1'='1" }, SECRET), 'TOKEN_INVALID'],
    ['garbage', 'not.a.jwt', 'TOKEN_INVALID'],
  ]
  for (const [label, token, code] of forgeries) {
    const [viaCookie, viaHeader] = await bothWays(token)
    t.equal(viaCookie.statusCode, 401, `${label} (cookie)`)
    t.equal(viaCookie.json().code, code, `${label} (cookie) code`)
    t.equal(viaHeader.statusCode, 401, `${label} (header)`)
    t.equal(viaHeader.json().code, code, `${label} (header) code`)
  }
})

t.test('no token at all is 401 TOKEN_MISSING', async (t) => {
  const response = await app.inject({ url: '/api/tasks' })
  t.equal(response.statusCode, 401)
  t.same(response.json(), { statusCode: 401, error: 'Unauthorized', message: 'Sign in first', code: 'TOKEN_MISSING' })
})

t.test('a token signed with a previous key (JWT_PREVIOUS_SECRETS) is still accepted', async (t) => {
  const rotated = forgeToken({ ...claims }, OLD_SECRET)
  for (const response of await bothWays(rotated)) t.equal(response.statusCode, 200)
})

t.test('the Authorization header wins over the cookie', async (t) => {
  const response = await app.inject({
    url: '/api/auth/me',
    cookies: { '__Host-access_token': aliceToken },
    headers: { authorization: 'Bearer not.a.jwt' },
  })
  t.equal(response.statusCode, 401)
})

t.test('a role claim of admin is worth nothing while the stored role is user', async (t) => {
  const boasting = forgeToken({ ...claims, role: 'admin' }, SECRET)
  const response = await app.inject({ url: '/api/users', cookies: { '__Host-access_token': boasting } })
  t.equal(response.statusCode, 403)
  t.equal(response.json().code, 'FORBIDDEN_ROLE')
})

t.test('a deleted user is refused on the next request', async (t) => {
  const bob = await signIn(app)
  t.equal((await app.inject({ url: '/api/auth/me', cookies: bob.cookies })).statusCode, 200)
  await app.db.delete(users).where(eq(users.id, bob.id))
  const response = await app.inject({ url: '/api/auth/me', cookies: bob.cookies })
  t.equal(response.statusCode, 401)
  t.equal(response.json().code, 'SESSION_REVOKED')
})
