import t from 'tap'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { ConfigError, loadConfig } from '../src/config.js'
import { openDatabase } from '../src/db/client.js'
import { freePort } from './helpers/server-process.js'

// Several cases start the real server in a child process: slow on a loaded 2-core machine.
t.setTimeout(600_000)

const STRONG = 'x'.repeat(32)
const PRODUCTION_ORIGINS = { CORS_ORIGINS: 'https://app.example.com', PUBLIC_ORIGIN: 'https://api.example.com' }

function refusal (env: Record<string, string>): string | undefined {
  try {
    loadConfig({ DATA_DIR: 'memory://', ...env })
    return undefined
  } catch (error) {
    t.type(error, ConfigError)
    return (error as Error).message
  }
}

t.test('defaults follow the contract', async (t) => {
  const config = loadConfig({ DATA_DIR: 'memory://' })
  t.match(config, {
    port: 8086,
    host: '127.0.0.1',
    databaseUrl: undefined,
    databasePrepare: true,
    corsOrigins: ['http://localhost:4100', 'http://127.0.0.1:4100'],
    cookieSecure: true,
    cookiePartitioned: true,
    trustProxy: [],
    accessTokenTtl: 900,
    refreshTokenTtl: 1_209_600,
    sessionMaxAge: 2_592_000,
    refreshReuseGrace: 10,
    migrateOnStart: true,
    docs: true,
    frontendPort: 4100,
    logLevel: 'info',
    accessCookieName: '__Host-access_token',
    refreshCookieName: '__Secure-refresh_token',
  })
  t.ok(Object.isFrozen(config))
  t.ok(Buffer.byteLength(config.jwtSecret) >= 32, 'a generated development secret')
})

t.test('production refuses a missing or short JWT_SECRET and COOKIE_SECURE=false', async (t) => {
  t.match(refusal({ NODE_ENV: 'production' }), /JWT_SECRET is required/)
  t.match(refusal({ NODE_ENV: 'production', JWT_SECRET: 'short-secret' }), /JWT_SECRET must be at least 32 bytes/)
  t.match(refusal({ NODE_ENV: 'production', JWT_SECRET: STRONG, ENCRYPTION_KEY: STRONG, COOKIE_SECURE: 'false' }), /COOKIE_SECURE/)
  t.equal(refusal({ NODE_ENV: 'production', JWT_SECRET: STRONG, ENCRYPTION_KEY: STRONG, ...PRODUCTION_ORIGINS }), undefined)
  t.match(refusal({ JWT_SECRET: 'short' }), /JWT_SECRET must be at least 32 bytes/, 'a short secret is refused outside production too')
  t.match(refusal({ JWT_PREVIOUS_SECRETS: `${STRONG},short` }), /JWT_PREVIOUS_SECRETS/)
})

t.test('production: CORS_ORIGINS explicit and https only, PUBLIC_ORIGIN required, DOCS off unless asked', async (t) => {
  const production = { NODE_ENV: 'production', JWT_SECRET: STRONG, ENCRYPTION_KEY: STRONG }
  t.match(refusal({ ...production, PUBLIC_ORIGIN: 'https://api.example.com' }), /^Invalid configuration: CORS_ORIGINS must be set when NODE_ENV=production/)
  t.match(refusal({ ...production, PUBLIC_ORIGIN: 'https://api.example.com', CORS_ORIGINS: 'http://localhost:4100,http://127.0.0.1:4100' }),
    /^Invalid configuration: CORS_ORIGINS is the development default/, 'the localhost default, spelled out, is refused too')
  t.match(refusal({ ...production, PUBLIC_ORIGIN: 'https://api.example.com', CORS_ORIGINS: 'https://app.example.com,http://app.example.com' }),
    /^Invalid configuration: CORS_ORIGINS has "http:\/\/app.example.com": only https origins/)
  t.match(refusal({ ...production, CORS_ORIGINS: 'https://app.example.com' }), /^Invalid configuration: PUBLIC_ORIGIN must be set when NODE_ENV=production/)
  t.match(refusal({ ...production, CORS_ORIGINS: 'https://app.example.com', PUBLIC_ORIGIN: 'http://api.example.com' }), /^Invalid configuration: PUBLIC_ORIGIN has .*only https/)
  const config = loadConfig({ ...production, ...PRODUCTION_ORIGINS, DATA_DIR: 'memory://' })
  t.same(config.corsOrigins, ['https://app.example.com'])
  t.same(config.publicOrigins, ['https://api.example.com'])
  t.equal(config.docs, false, 'DOCS defaults to false in production')
  t.equal(loadConfig({ ...production, ...PRODUCTION_ORIGINS, DATA_DIR: 'memory://', DOCS: 'true' }).docs, true, 'unless asked for')
  t.equal(loadConfig({ DATA_DIR: 'memory://' }).docs, true, 'and true outside production')
})

t.test('PUBLIC_ORIGIN defaults to the loopback names of PORT outside production', async (t) => {
  t.same(loadConfig({ DATA_DIR: 'memory://', PORT: '9001' }).publicOrigins, ['http://127.0.0.1:9001', 'http://localhost:9001'])
  t.same(loadConfig({ DATA_DIR: 'memory://', PUBLIC_ORIGIN: 'http://dev.example.test:8086' }).publicOrigins, ['http://dev.example.test:8086'])
})

t.test('COOKIE_SAMESITE: none by default with Secure, lax without; lax and strict on request; none without Secure refused', async (t) => {
  t.equal(loadConfig({ DATA_DIR: 'memory://' }).cookieSameSite, 'none')
  t.equal(loadConfig({ DATA_DIR: 'memory://', COOKIE_SECURE: 'false' }).cookieSameSite, 'lax')
  t.equal(loadConfig({ DATA_DIR: 'memory://', COOKIE_SAMESITE: 'Strict' }).cookieSameSite, 'strict')
  t.equal(loadConfig({ DATA_DIR: 'memory://', COOKIE_SAMESITE: 'lax' }).cookieSameSite, 'lax')
  t.match(refusal({ COOKIE_SAMESITE: 'none', COOKIE_SECURE: 'false' }), /^Invalid configuration: COOKIE_SAMESITE cannot be none with COOKIE_SECURE=false/)
})

t.test('each bad value stops the start with a line naming its variable', async (t) => {
  const cases: Array<[string, string]> = [
    ['PORT', 'eighty'], ['PORT', '70000'], ['ACCESS_TOKEN_TTL', '-5'], ['REFRESH_TOKEN_TTL', '1.5'],
    ['SESSION_MAX_AGE', 'forever'], ['REFRESH_REUSE_GRACE', 'x'], ['COOKIE_SECURE', 'yes please'],
    ['COOKIE_PARTITIONED', 'maybe'], ['MIGRATE_ON_START', '2'], ['DOCS', 'on'], ['LOG_LEVEL', 'loud'],
    ['DATABASE_URL', 'mysql://x'], ['REDIS_URL', 'http://x'], ['CORS_ORIGINS', 'https://a.example/'],
    ['CORS_ORIGINS', 'a.example'], ['FRONTEND_PORT', 'x'], ['DATABASE_PREPARE', 'nope'],
    ['METRICS_TOKEN', 'short'], ['METRICS_TOKEN', 'a token with spaces in it'],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'collector:4318'], ['OTEL_EXPORTER_OTLP_ENDPOINT', 'grpc://collector:4317'],
    ['PUBLIC_ORIGIN', 'https://api.example/'], ['PUBLIC_ORIGIN', 'api.example'], ['COOKIE_SAMESITE', 'sometimes'],
  ]
  for (const [variable, value] of cases) {
    const message = refusal({ [variable]: value })
    t.match(message, new RegExp(`^Invalid configuration: ${variable} `), `${variable}=${value}`)
    t.notOk(message?.includes('\n'), 'one line')
  }
})

t.test('metrics and tracing are off unless their variables are set', async (t) => {
  const off = loadConfig({ DATA_DIR: 'memory://' })
  t.equal(off.metricsToken, undefined)
  t.equal(off.otelEndpoint, undefined)
  t.equal(off.otelServiceName, 'cookie-auth-api')
  const on = loadConfig({
    DATA_DIR: 'memory://',
    METRICS_TOKEN: 'a'.repeat(16),
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/',
    OTEL_SERVICE_NAME: 'auth-eu-1',
  })
  t.equal(on.metricsToken, 'a'.repeat(16))
  t.equal(on.otelEndpoint, 'http://127.0.0.1:4318', 'a trailing slash is dropped: /v1/traces is appended')
  t.equal(on.otelServiceName, 'auth-eu-1')
})

t.test('ADMIN_USERNAME and ADMIN_PASSWORD follow the same rules as a registration, checked at load', async (t) => {
  t.match(refusal({ ADMIN_USERNAME: 'a b', ADMIN_PASSWORD: 'long-enough-pass' }), /^Invalid configuration: ADMIN_USERNAME must be 3–32 of/)
  t.match(refusal({ ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'short' }), /^Invalid configuration: ADMIN_PASSWORD must be 8–256 characters$/)
})

t.test('ADMIN_USERNAME without ADMIN_PASSWORD names the missing one', async (t) => {
  t.match(refusal({ ADMIN_USERNAME: 'root' }), /^Invalid configuration: ADMIN_PASSWORD must be set together with ADMIN_USERNAME$/)
})

t.test('the development secret is generated once, kept in DATA_DIR with mode 0600, and reused', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cfg-'))
  const otherDir = mkdtempSync(join(tmpdir(), 'cfg-'))
  t.teardown(() => { rmSync(dataDir, { recursive: true, force: true }); rmSync(otherDir, { recursive: true, force: true }) })
  const first = loadConfig({ DATA_DIR: dataDir })
  const second = loadConfig({ DATA_DIR: dataDir })
  t.equal(first.jwtSecret, second.jwtSecret, 'the same secret after a restart')
  t.equal(readFileSync(join(dataDir, 'jwt-secret'), 'utf8').trim(), first.jwtSecret)
  t.equal(statSync(join(dataDir, 'jwt-secret')).mode & 0o777, 0o600)
  t.not(loadConfig({ DATA_DIR: otherDir }).jwtSecret, first.jwtSecret, 'another data dir, another secret')
})

t.test('ENCRYPTION_KEY: at least 32 bytes, required in production, generated once (0600) in development', async (t) => {
  t.match(refusal({ NODE_ENV: 'production', JWT_SECRET: STRONG, ...PRODUCTION_ORIGINS }), /^Invalid configuration: ENCRYPTION_KEY is required when NODE_ENV=production/)
  t.match(refusal({ NODE_ENV: 'production', JWT_SECRET: STRONG, ...PRODUCTION_ORIGINS, ENCRYPTION_KEY: 'short' }), /ENCRYPTION_KEY must be at least 32 bytes/)
  t.match(refusal({ ENCRYPTION_KEY: 'short' }), /ENCRYPTION_KEY must be at least 32 bytes/, 'outside production too')
  t.match(refusal({ ENCRYPTION_PREVIOUS_KEYS: `${STRONG},short` }), /ENCRYPTION_PREVIOUS_KEYS/)
  t.equal(loadConfig({ DATA_DIR: 'memory://', ENCRYPTION_KEY: STRONG }).encryptionKey, STRONG)

  const dataDir = mkdtempSync(join(tmpdir(), 'config-encryption-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const first = loadConfig({ DATA_DIR: dataDir })
  t.ok(Buffer.byteLength(first.encryptionKey) >= 32)
  t.not(first.encryptionKey, first.jwtSecret, 'a key of its own, not the JWT secret')
  t.equal(loadConfig({ DATA_DIR: dataDir }).encryptionKey, first.encryptionKey, 'kept across restarts')
  t.equal(readFileSync(join(dataDir, 'encryption-key'), 'utf8').trim(), first.encryptionKey)
  t.equal(statSync(join(dataDir, 'encryption-key')).mode & 0o777, 0o600)
})

t.test('MFA_REQUIRED_ROLES: a list of known roles, none by default', async (t) => {
  t.same(loadConfig({ DATA_DIR: 'memory://' }).mfaRequiredRoles, [])
  t.same(loadConfig({ DATA_DIR: 'memory://', MFA_REQUIRED_ROLES: 'admin' }).mfaRequiredRoles, ['admin'])
  t.same(loadConfig({ DATA_DIR: 'memory://', MFA_REQUIRED_ROLES: ' admin , user ' }).mfaRequiredRoles, ['admin', 'user'])
  t.match(refusal({ MFA_REQUIRED_ROLES: 'admin,root' }), /^Invalid configuration: MFA_REQUIRED_ROLES has "root", which is not a role/)
})

t.test('the server refuses to start in production without a secret, with one clear line', async (t) => {
  let stderr = ''
  let status = 0
  try {
    execFileSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', DATA_DIR: 'memory://' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    })
  } catch (error) {
    stderr = String((error as { stderr: Buffer }).stderr)
    status = (error as { status: number }).status
  }
  t.equal(status, 1)
  t.match(stderr.trim(), /^Invalid configuration: JWT_SECRET is required when NODE_ENV=production/)
  t.equal(stderr.trim().split('\n').length, 1)
})

t.test('CORS_ORIGINS defaults to the example frontend\'s own origins, wherever FRONTEND_PORT puts it', async (t) => {
  t.same(loadConfig({ DATA_DIR: 'memory://', FRONTEND_PORT: '4300' }).corsOrigins, ['http://localhost:4300', 'http://127.0.0.1:4300'])
  t.same(loadConfig({ DATA_DIR: 'memory://', FRONTEND_PORT: '0' }).corsOrigins, ['http://localhost:4100', 'http://127.0.0.1:4100'], 'no frontend: `npm run frontend`\'s default')
  t.same(loadConfig({ DATA_DIR: 'memory://', FRONTEND_PORT: '4300', CORS_ORIGINS: 'https://app.example.com' }).corsOrigins, ['https://app.example.com'], 'an explicit list is kept as given')
})

/** `src/server.ts` with `env`: its exit status and what it wrote to stderr. */
function startFails (env: Record<string, string>): { status: number, stderr: string } {
  try {
    execFileSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', FRONTEND_PORT: '0', DATA_DIR: 'memory://', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    })
    return { status: 0, stderr: '' }
  } catch (error) {
    return { status: (error as { status: number }).status, stderr: String((error as { stderr: Buffer }).stderr).trim() }
  }
}

t.test('a start that cannot reach its database or port stops with one line naming the cause and the fix', async (t) => {
  const blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())))
  const takenPort = String((blocker.address() as AddressInfo).port)
  const closedPort = String(await freePort())
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    // The port is checked before the database: no database is even tried here.
    ['a taken port', { PORT: takenPort, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' }, new RegExp(`^Cannot start: port ${takenPort} on 127.0.0.1 is already in use.*set PORT$`)],
    ['a refused connection', { PORT: '0', DATABASE_URL: `postgres://postgres@127.0.0.1:${closedPort}/x` }, /^Cannot start: nothing accepts connections at 127\.0\.0\.1:\d+\/x; start Postgres, or fix the host and port in DATABASE_URL$/],
  ]
  if (process.env.TEST_DATABASE_URL) {
    const missing = new URL(process.env.TEST_DATABASE_URL)
    missing.pathname = '/no_such_database_h13'
    cases.push(['a database that does not exist', { PORT: '0', DATABASE_URL: missing.toString() }, /^Cannot start: the database .*no_such_database_h13 does not exist; create it first \(`createdb no_such_database_h13`/])
    const tls = new URL(process.env.TEST_DATABASE_URL)
    tls.searchParams.set('sslmode', 'require')
    cases.push(['TLS asked of a server without it', { PORT: '0', DATABASE_URL: tls.toString() }, /^Cannot start: .*TLS.*sslmode/])
  }
  for (const [label, env, expected] of cases) {
    const { status, stderr } = startFails(env)
    t.equal(status, 1, `${label}: exit 1`)
    t.match(stderr, expected, label)
    t.equal(stderr.split('\n').length, 1, `${label}: one line, no stack`)
  }
})

t.test('DATA_DIR is created 0700 and refused when group or others can reach it; the dev secret is checked like a real one', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'cfg-'))
  t.teardown(() => rmSync(parent, { recursive: true, force: true }))
  const previousUmask = process.umask(0o022)
  t.teardown(() => { process.umask(previousUmask) })
  const fresh = join(parent, 'fresh', 'data')
  loadConfig({ DATA_DIR: fresh })
  t.equal(statSync(fresh).mode & 0o777, 0o700, 'created private even with umask 022')

  const open = join(parent, 'open')
  mkdirSync(open, { mode: 0o755 })
  chmodSync(open, 0o755)
  t.match(refusal({ DATA_DIR: open }), /^Invalid configuration: DATA_DIR .* has mode 0755, open to group or others: chmod 700/)
  await t.rejects(openDatabase({ databaseUrl: undefined, dataDir: open }), ConfigError, 'the embedded database refuses it too, before opening')

  const readable = join(parent, 'readable')
  mkdirSync(readable, { mode: 0o700 })
  writeFileSync(join(readable, 'jwt-secret'), 'y'.repeat(48) + '\n', { mode: 0o644 })
  chmodSync(join(readable, 'jwt-secret'), 0o644)
  t.match(refusal({ DATA_DIR: readable }), /^Invalid configuration: DATA_DIR holds jwt-secret with mode 0644/)

  const short = join(parent, 'short')
  mkdirSync(short, { mode: 0o700 })
  writeFileSync(join(short, 'jwt-secret'), 'too-short\n', { mode: 0o600 })
  t.match(refusal({ DATA_DIR: short }), /^Invalid configuration: DATA_DIR holds a jwt-secret under 32 bytes/)
})

t.test('APP_URL: the frontend link in mails and after an identity-provider sign-in', async (t) => {
  t.equal(loadConfig({ DATA_DIR: 'memory://' }).appUrl, 'http://localhost:4100', 'the example frontend by default')
  t.equal(loadConfig({ DATA_DIR: 'memory://', APP_URL: 'https://app.example.com/portal/' }).appUrl, 'https://app.example.com/portal', 'a path is kept, its trailing slash is not')
  const production = { NODE_ENV: 'production', JWT_SECRET: STRONG, ENCRYPTION_KEY: STRONG, DATA_DIR: 'memory://', ...PRODUCTION_ORIGINS }
  t.equal(loadConfig(production).appUrl, 'https://app.example.com', 'production without it: the frontend\'s origin, never localhost')
  t.match(refusal({ ...production, APP_URL: 'http://app.example.com' }), /APP_URL .*only https/)
  t.match(refusal({ APP_URL: 'https://app.example.com/#/x' }), /APP_URL .*without query, fragment/)
  t.match(refusal({ APP_URL: 'not a url' }), /APP_URL has "not a url"/)
})

t.test('passkeys: the RP id is the frontend\'s domain, and a mismatch with the origins stops the start', async (t) => {
  const dev = loadConfig({ DATA_DIR: 'memory://' })
  t.equal(dev.webauthnRpId, 'localhost', 'APP_URL\'s host by default')
  t.equal(dev.webauthnRpName, 'cookie-auth-api')
  t.same(dev.webauthnOrigins, ['http://localhost:4100'], 'the CORS origins the RP id can serve (an IP address never can)')

  const twoSite = loadConfig({ DATA_DIR: 'memory://', APP_URL: 'https://app.example.com', CORS_ORIGINS: 'https://app.example.com,https://beta.app.example.com' })
  t.equal(twoSite.webauthnRpId, 'app.example.com')
  t.same(twoSite.webauthnOrigins, ['https://app.example.com', 'https://beta.app.example.com'])

  const parent = loadConfig({ DATA_DIR: 'memory://', WEBAUTHN_RP_ID: 'Example.com', WEBAUTHN_ORIGINS: 'https://app.example.com,https://example.com', WEBAUTHN_RP_NAME: 'Tasks' })
  t.equal(parent.webauthnRpId, 'example.com', 'a parent domain serves its subdomains; case does not matter')
  t.same(parent.webauthnOrigins, ['https://app.example.com', 'https://example.com'])
  t.equal(parent.webauthnRpName, 'Tasks')

  t.match(refusal({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://app.example.com,https://evil-example.com' }),
    /^Invalid configuration: WEBAUTHN_ORIGINS has "https:\/\/evil-example.com", whose host is not example.com nor under it/, 'a look-alike suffix is not a subdomain')
  t.match(refusal({ WEBAUTHN_RP_ID: 'app.example.com', WEBAUTHN_ORIGINS: 'https://example.com' }), /WEBAUTHN_ORIGINS has "https:\/\/example.com"/, 'a subdomain cannot serve its parent')
  t.match(refusal({ WEBAUTHN_RP_ID: 'example.com' }), /^Invalid configuration: WEBAUTHN_RP_ID is "example.com", and neither CORS_ORIGINS nor APP_URL has an origin on it/)
  const elsewhere = loadConfig({ DATA_DIR: 'memory://', CORS_ORIGINS: 'https://app.example.com' })
  t.same([elsewhere.webauthnRpId, elsewhere.webauthnOrigins], ['localhost', ['http://localhost:4100']], 'development with a remote CORS origin and no APP_URL still starts (APP_URL\'s origin)')
  t.match(refusal({ WEBAUTHN_RP_ID: '127.0.0.1', WEBAUTHN_ORIGINS: 'http://127.0.0.1:4100' }), /^Invalid configuration: WEBAUTHN_RP_ID is "127.0.0.1": it must be a domain name/)
  t.match(refusal({ WEBAUTHN_RP_ID: 'https://example.com' }), /WEBAUTHN_RP_ID is "https:\/\/example.com": it must be a domain name/)
  t.match(refusal({ WEBAUTHN_ORIGINS: 'http://localhost:4100/' }), /WEBAUTHN_ORIGINS has "http:\/\/localhost:4100\/", which is not an origin/)

  const production = { NODE_ENV: 'production', JWT_SECRET: STRONG, ENCRYPTION_KEY: STRONG, DATA_DIR: 'memory://', ...PRODUCTION_ORIGINS }
  t.equal(loadConfig(production).webauthnRpId, 'app.example.com', 'production: the frontend\'s host')
  t.match(refusal({ ...production, WEBAUTHN_ORIGINS: 'http://app.example.com' }), /^Invalid configuration: WEBAUTHN_ORIGINS has "http:\/\/app.example.com": only https origins/)
})

t.test('the server refuses an RP id that cannot match its origins with one line', async (t) => {
  const { status, stderr } = startFails({ PORT: '0', WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'http://localhost:4100' })
  t.equal(status, 1)
  t.match(stderr, /^Invalid configuration: WEBAUTHN_ORIGINS has "http:\/\/localhost:4100", whose host is not example.com nor under it/)
  t.equal(stderr.split('\n').length, 1, 'one line, no stack')
})
