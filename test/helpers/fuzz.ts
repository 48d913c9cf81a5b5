import { createHmac, randomUUID } from 'node:crypto'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import fc from 'fast-check'
import { sql } from 'drizzle-orm'
import { auditEvents, refreshTokens, sessions, tasks, users } from '../../src/db/schema.js'
import { signIn, type SignedIn } from './app.js'

/** Cases per property: small in CI, `FUZZ_RUNS=5000 npm run fuzz` for a long run. */
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? '') || 60

/** Every route of API.md (and the docs), with `:id` where a path parameter goes. */
export const ROUTES: ReadonlyArray<readonly [string, string]> = [
  ['POST', '/api/auth/register'], ['POST', '/api/auth/login'], ['POST', '/api/auth/refresh'], ['POST', '/api/auth/logout'],
  ['POST', '/api/auth/logout-all'], ['GET', '/api/auth/sessions'], ['DELETE', '/api/auth/sessions/:id'], ['GET', '/api/auth/me'],
  ['POST', '/api/auth/password'], ['POST', '/api/auth/token'],
  ['GET', '/api/tasks'], ['POST', '/api/tasks'], ['GET', '/api/tasks/:id'], ['PATCH', '/api/tasks/:id'], ['DELETE', '/api/tasks/:id'],
  ['GET', '/api/users'], ['GET', '/api/users/:id'], ['PATCH', '/api/users/:id'], ['DELETE', '/api/users/:id'], ['DELETE', '/api/users/:id/sessions'],
  ['GET', '/api/audit'], ['GET', '/api/health'], ['GET', '/api/health/ready'], ['GET', '/api/docs/json'],
]

/** Requests that, when they succeed, end the fixture's sessions or accounts: it is rebuilt after them. */
const DESTRUCTIVE = /^(POST \/api\/auth\/(logout|logout-all|password)|DELETE \/api\/(auth\/sessions|users)\/|PATCH \/api\/users\/)/

const TABLES = { users, sessions, refreshTokens, tasks, auditEvents } as const
type TableName = keyof typeof TABLES
type Snapshot = Record<TableName, string>

/** A checksum of every row of every table, taken through the query builder (same shape on both drivers). */
export async function snapshot (app: FastifyInstance): Promise<Snapshot> {
  const entries = await Promise.all(Object.entries(TABLES).map(async ([name, table]) => {
    const sqlName = sql.raw(`"${(table as unknown as Record<symbol, string>)[Symbol.for('drizzle:Name')]}"`)
    const [row] = await app.db.select({
      sum: sql<string>`count(*)::text || ':' || md5(coalesce(string_agg(${sqlName}::text, ',' order by ${sqlName}::text), ''))`,
    }).from(table)
    return [name, row!.sum] as const
  }))
  return Object.fromEntries(entries) as Snapshot
}

/**
 * The tables a 4xx may still change, by error code. A failed sign-in and a refused role are
 * audited (API.md); a reused refresh token revokes its whole session. Everything else refused
 * changes nothing at all.
 */
function allowedChanges (code: unknown): ReadonlySet<TableName> {
  if (code === 'BAD_CREDENTIALS' || code === 'FORBIDDEN_ROLE') return new Set(['auditEvents'])
  if (code === 'REFRESH_REUSED') return new Set(['auditEvents', 'sessions'])
  return new Set()
}

export interface Fixture {
  user: SignedIn
  admin: SignedIn
  taskId: string
  sessionId: string
  /** A refresh token already rotated away (presenting it again after the grace is reuse). */
  oldRefresh: string
  secret: string
}

export async function buildFixture (app: FastifyInstance): Promise<Fixture> {
  // Rebuilt after every destructive batch: seeded users share one password hash.
  const user = await signIn(app, { seeded: true })
  const admin = await signIn(app, { role: 'admin', seeded: true })
  const task = await app.inject({ method: 'POST', url: '/api/tasks', cookies: user.cookies, payload: { title: 'fixture' } })
  const listed = await app.inject({ method: 'GET', url: '/api/auth/sessions', cookies: user.cookies })
  return {
    user,
    admin,
    taskId: task.json().task.id,
    sessionId: listed.json().items[0].id,
    oldRefresh: user.cookies[app.config.refreshCookieName] ?? '',
    secret: app.config.jwtSecret,
  }
}

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

/** JWTs from plainly random to almost right: wrong key, alg none, tampered claims, expired, other types. */
function nearValidJwt (fixture: Fixture) {
  const now = Math.floor(Date.now() / 1000)
  const claims = fc.record({
    sub: fc.oneof(fc.constant(fixture.user.id), fc.constant(fixture.admin.id), fc.uuid(), fc.string()),
    sid: fc.oneof(fc.constant(fixture.sessionId), fc.uuid(), fc.string(), fc.integer()),
    role: fc.constantFrom('user', 'admin', 'root', ''),
    typ: fc.constantFrom('access', 'refresh', undefined),
    jti: fc.uuid(),
    iat: fc.constantFrom(now, now + 3600, 0),
    exp: fc.oneof(fc.constantFrom(now + 600, now - 10, 1e20, -1), fc.double()),
    iss: fc.constantFrom('cookie-auth-api', 'evil'),
    aud: fc.constantFrom('cookie-auth-api', ['cookie-auth-api', 'x'], 'evil'),
  }, { requiredKeys: [] })
  const header = fc.oneof(
    fc.constant({ alg: 'HS256', typ: 'JWT' }),
    fc.constant({ alg: 'none' }),
    fc.constant({ alg: 'HS512' }),
    fc.constant({ alg: 'RS256' }),
    fc.constant({ alg: 'HS256', kid: '../../dev/null', jku: 'http://127.0.0.1:1/jwks' }),
    fc.dictionary(fc.string(), fc.jsonValue())
  )
  return fc.tuple(header, claims, fc.constantFrom('right', 'wrong', 'empty', 'garbage')).map(([h, c, key]) => {
    const signingInput = `${b64(h)}.${b64(c)}`
    const signature = key === 'right'
      ? createHmac('sha256', fixture.secret).update(signingInput).digest('base64url')
      : key === 'wrong' ? createHmac('sha256', 'x'.repeat(32)).update(signingInput).digest('base64url') : key === 'empty' ? '' : b64(randomUUID())
    return `${signingInput}.${signature}`
  })
}

/** Header values light-my-request will send (it refuses control characters, as Node would). */
const headerValue = fc.string({ unit: fc.constantFrom(...' !"#$%&\'()*+,-./0123456789:;<=>?@ABCZ[\\]^_`abcz{|}~é'.split('')), maxLength: 200 })
const headerName = fc.stringMatching(/^[a-z][a-z0-9-]{0,30}$/)

/** Access tokens: mostly the fixture's real ones (so requests reach the handlers), else near-valid or junk. */
function token (fixture: Fixture, accessCookieName: string) {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant(fixture.user.cookies[accessCookieName] ?? '') },
    { weight: 2, arbitrary: fc.constant(fixture.admin.cookies[accessCookieName] ?? '') },
    { weight: 2, arbitrary: nearValidJwt(fixture) },
    { weight: 1, arbitrary: headerValue }
  )
}

const deep = (depth: number, leaf: string) => '['.repeat(depth) + leaf + ']'.repeat(depth)

function body (fixture: Fixture) {
  const text = fc.oneof(fc.string({ maxLength: 300 }), fc.constantFrom('', 'a', 'x'.repeat(201), 'x'.repeat(5001), 'a\u0000b', '\ud800', 'admin', 'violet-Kettle-42-orbit', 'password123'))
  const value = fc.oneof(text, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(1e308, -0, 2 ** 64, Number.MAX_SAFE_INTEGER + 2))
  const shaped = fc.record({
    username: fc.oneof(value, fc.constantFrom(fixture.user.username, fixture.admin.username, 'new_user_' + randomUUID().slice(0, 6))),
    password: fc.oneof(value, fc.constant(fixture.user.password)),
    currentPassword: value,
    newPassword: value,
    title: value,
    description: value,
    done: value,
    role: fc.oneof(value, fc.constantFrom('user', 'admin')),
    extra: value,
  }, { requiredKeys: [] })
  return fc.oneof(
    { weight: 4, arbitrary: shaped.map((object) => JSON.stringify(object)) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((json) => JSON.stringify(json)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 500 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '{"__proto__":{"role":"admin"},"title":"x"}', '{"constructor":{"prototype":{"role":"admin"}},"title":"x"}',
        '{"title":"x","title":"y"}', '{"title":1e400}', '{"limit":-1e308}', deep(5000, '1'), `{"title":${deep(2000, '"x"')}}`,
        '[]', 'null', 'true', '"string"', '{', '{"title":"\\u0000"}', '{"done":"true"}', '\u0000', '\ufeff{"title":"bom"}')
    },
    { weight: 1, arbitrary: fc.constant(undefined) }
  )
}

function pathFor (template: string, fixture: Fixture) {
  const id = fc.oneof(
    fc.constantFrom(fixture.taskId, fixture.user.id, fixture.admin.id, fixture.sessionId),
    fc.uuid(),
    fc.constantFrom('', '0', '-1', 'null', '..%2F..%2Fetc%2Fpasswd', '%00', '%E0%A4%A', 'ffffffff-ffff-ffff-ffff-fffffffffffff', 'x'.repeat(300)),
    fc.string({ maxLength: 60 }).map((value) => encodeURIComponent(value))
  )
  return id.map((value) => template.replace(':id', value))
}

function queryString () {
  const junk = fc.oneof(fc.string({ maxLength: 80 }), fc.base64String({ maxLength: 80 }), fc.uuid(),
    fc.constantFrom('0', '-1', '101', '1e308', '99999999999999999999', '1.5', 'NaN', '', 'admin'))
  // Each known key is absent, valid or hostile, so that a query is often valid but for one field and
  // gets past validation to the code behind it.
  const field = (valid: fc.Arbitrary<string>) => fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 3, arbitrary: valid },
    { weight: 1, arbitrary: junk }
  )
  // Near-valid cursors: the right format, any date JavaScript can hold, any UUID.
  const cursor = fc.tuple(fc.date({ min: new Date(-8.64e15), max: new Date(8.64e15), noInvalidDate: true }), fc.uuid())
    .map(([at, id]) => Buffer.from(`${at.toISOString()}|${id}`).toString('base64url'))
  return fc.record({
    limit: field(fc.integer({ min: 1, max: 100 }).map(String)),
    cursor: field(cursor),
    userId: field(fc.uuid()),
    type: field(fc.constantFrom('login', 'register', 'access_denied')),
    extra: fc.oneof(
      { weight: 6, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom('__proto__', 'constructor', 'limit[]', '__proto__[role]', 'x', 'limit'), junk) }
    ),
  }).map(({ extra, ...known }) => [
    ...Object.entries(known).filter((entry): entry is [string, string] => entry[1] !== undefined),
    ...(extra === undefined ? [] : [extra]),
  ].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&'))
}

/** One random request: a route (or a near one), its method (or another), and hostile everything else. */
export function requestArbitrary (fixture: Fixture, refreshCookieName: string, accessCookieName: string): fc.Arbitrary<InjectOptions> {
  return fc.constantFrom(...ROUTES).chain(([method, template]) => fc.record({
    method: fc.oneof({ weight: 6, arbitrary: fc.constant(method) }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'OPTIONS', 'HEAD') }),
    path: pathFor(template, fixture),
    query: queryString(),
    body: body(fixture),
    contentType: fc.constantFrom('application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined, 'application/json; charset=latin1'),
    // Bearer wins over the cookie when present: sent on one request in four.
    auth: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: token(fixture, accessCookieName).map((value) => `Bearer ${value}`) }),
    accessCookie: fc.option(token(fixture, accessCookieName), { nil: undefined, freq: 5 }),
    refreshCookie: fc.option(fc.oneof(fc.constantFrom(fixture.oldRefresh, fixture.user.cookies[refreshCookieName] ?? ''), fc.base64String({ maxLength: 60 }), headerValue), { nil: undefined }),
    cookies: fc.dictionary(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_-]{0,20}$/), headerValue, { maxKeys: 5 }),
    headers: fc.dictionary(headerName.filter((name) => !['content-length', 'transfer-encoding', 'host', 'content-type', 'cookie', 'authorization', 'connection', 'expect', 'upgrade'].includes(name)), headerValue, { maxKeys: 4 }),
    origin: fc.option(fc.constantFrom('http://localhost:4100', 'https://evil.test', 'null', 'http://localhost'), { nil: undefined, freq: 2 }),
  })).map((r) => {
    const headers: Record<string, string> = { ...r.headers }
    if (r.contentType !== undefined && r.body !== undefined) headers['content-type'] = r.contentType
    if (r.auth !== undefined) headers.authorization = r.auth
    if (r.origin !== undefined) headers.origin = r.origin
    const cookies: Record<string, string> = { ...r.cookies }
    if (r.accessCookie !== undefined) cookies[accessCookieName] = r.accessCookie
    if (r.refreshCookie !== undefined) cookies[refreshCookieName] = r.refreshCookie
    return {
      method: r.method as NonNullable<InjectOptions['method']>,
      url: r.query === '' ? r.path : `${r.path}?${r.query}`,
      headers,
      cookies,
      ...(r.body === undefined ? {} : { payload: r.body }),
    }
  })
}

/** API.md: every 401 and 429 carries one of these codes (both halves of the contract). */
export const AUTH_FAILURE_CODES: ReadonlySet<string> = new Set([
  'TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'SESSION_REVOKED', 'REFRESH_INVALID', 'REFRESH_REUSED',
  'FORBIDDEN_ROLE', 'CSRF_ORIGIN', 'RATE_LIMITED', 'BAD_CREDENTIALS',
  'MFA_INVALID', 'MFA_PENDING_INVALID', 'MFA_ENROLMENT_REQUIRED', 'PASSKEY_INVALID', 'EMAIL_TOKEN_INVALID',
  'RESET_TOKEN_INVALID', 'OIDC_FAILED',
])
/** API.md: every 403 is one of these. */
export const FORBIDDEN_CODES: ReadonlySet<string> = new Set(['FORBIDDEN_ROLE', 'CSRF_ORIGIN', 'MFA_ENROLMENT_REQUIRED'])

/** What must hold for every answer; returns a description of the first thing wrong, or undefined. */
export function checkAnswer (response: LightMyRequestResponse, request: InjectOptions): string | undefined {
  if (response.statusCode >= 500) return `${response.statusCode}: ${response.body}`
  if (response.statusCode < 400 || request.method === 'HEAD') return undefined
  let parsed: unknown
  try {
    parsed = response.json()
  } catch {
    return `a ${response.statusCode} whose body is not JSON: ${response.body.slice(0, 200)}`
  }
  const error = parsed as { statusCode?: unknown, error?: unknown, message?: unknown, code?: unknown }
  if (error.statusCode !== response.statusCode || typeof error.error !== 'string' || typeof error.message !== 'string' ||
    (error.code !== undefined && typeof error.code !== 'string')) {
    return `a ${response.statusCode} not in the error shape: ${response.body.slice(0, 200)}`
  }
  if (/at .+\(.+:\d+:\d+\)|select |insert |\$argon2/i.test(response.body)) return `a ${response.statusCode} leaking internals: ${response.body.slice(0, 200)}`
  // The metrics endpoint's 401 needs no contract code (API.md, "Metrics and tracing").
  const isMetrics = /^\/api\/metrics(\?|$)/.test(String(request.url ?? ''))
  if ((response.statusCode === 401 || response.statusCode === 429) && !isMetrics && !AUTH_FAILURE_CODES.has(String(error.code))) {
    return `a ${response.statusCode} without a contract code: ${response.body.slice(0, 200)}`
  }
  if (response.statusCode === 403 && !FORBIDDEN_CODES.has(String(error.code))) {
    return `a 403 that is not ${[...FORBIDDEN_CODES].join(', ')}: ${response.body.slice(0, 200)}`
  }
  return undefined
}

/**
 * The property: whatever the request, no 5xx, an error body in Fastify's shape for every 4xx, and no
 * row changed by a refused request (bar the side effects API.md names). Rebuilds the signed-in fixture
 * after a request that legitimately ended it.
 */
export async function fuzzRoutes (app: FastifyInstance, runs: number, seed?: number): Promise<void> {
  let fixture = await buildFixture(app)
  const { refreshCookieName, accessCookieName } = app.config
  // The fixture is fixed for a property run; a run that ends its sessions rebuilds it for the next.
  for (let remaining = runs; remaining > 0;) {
    const batch = Math.min(remaining, 25)
    let isDirty = false
    await fc.assert(fc.asyncProperty(requestArbitrary(fixture, refreshCookieName, accessCookieName), async (request) => {
      const before = await snapshot(app)
      const response = await app.inject(request)
      const problem = checkAnswer(response, request)
      if (problem !== undefined) throw new Error(`${request.method} ${request.url}: ${problem}`)
      if (response.statusCode >= 400 && response.statusCode < 500) {
        const after = await snapshot(app)
        // A HEAD answer has no body to read the code from; a 403 to it is a refused role (CSRF checks
        // only state-changing methods).
        const code = request.method === 'HEAD'
          ? (response.statusCode === 403 ? 'FORBIDDEN_ROLE' : undefined)
          : (response.json() as { code?: unknown }).code
        const allowed = allowedChanges(code)
        const changed = (Object.keys(before) as TableName[]).filter((name) => before[name] !== after[name] && !allowed.has(name))
        if (changed.length > 0) throw new Error(`${request.method} ${request.url}: a ${response.statusCode} (${response.body.slice(0, 120)}) changed ${changed.join(', ')}`)
      }
      if (response.statusCode < 300 && DESTRUCTIVE.test(`${request.method} ${request.url}`)) isDirty = true
    }), { numRuns: batch, ...(seed === undefined ? {} : { seed: seed + remaining }), endOnFailure: true })
    remaining -= batch
    if (isDirty) fixture = await buildFixture(app)
  }
}
