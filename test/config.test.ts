import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { ConfigError, loadConfig } from '../src/config.js'

const STRONG = 'x'.repeat(32)

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
  t.match(refusal({ NODE_ENV: 'production', JWT_SECRET: STRONG, COOKIE_SECURE: 'false' }), /COOKIE_SECURE/)
  t.equal(refusal({ NODE_ENV: 'production', JWT_SECRET: STRONG }), undefined)
  t.match(refusal({ JWT_SECRET: 'short' }), /JWT_SECRET must be at least 32 bytes/, 'a short secret is refused outside production too')
  t.match(refusal({ JWT_PREVIOUS_SECRETS: `${STRONG},short` }), /JWT_PREVIOUS_SECRETS/)
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
