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
  t.equal(refusal({ NODE_ENV: 'production', JWT_SECRET: STRONG, ENCRYPTION_KEY: STRONG }), undefined)
  t.match(refusal({ JWT_SECRET: 'short' }), /JWT_SECRET must be at least 32 bytes/, 'a short secret is refused outside production too')
  t.match(refusal({ JWT_PREVIOUS_SECRETS: `${STRONG},short` }), /JWT_PREVIOUS_SECRETS/)
})

t.test('each bad value stops the start with a line naming its variable', async (t) => {
  const cases: Array<[string, string]> = [
    ['PORT', 'eighty'], ['PORT', '70000'], ['ACCESS_TOKEN_TTL', '-5'], ['REFRESH_TOKEN_TTL', '1.5'],
    ['SESSION_MAX_AGE', 'forever'], ['REFRESH_REUSE_GRACE', 'x'], ['COOKIE_SECURE', 'yes please'],
    ['COOKIE_PARTITIONED', 'maybe'], ['MIGRATE_ON_START', '2'], ['DOCS', 'on'], ['LOG_LEVEL', 'loud'],
    ['DATABASE_URL', 'mysql://x'], ['REDIS_URL', 'http://x'], ['CORS_ORIGINS', 'https://a.example/'],
    ['CORS_ORIGINS', 'a.example'], ['FRONTEND_PORT', 'x'],
  ]
  for (const [variable, value] of cases) {
    const message = refusal({ [variable]: value })
    t.match(message, new RegExp(`^Invalid configuration: ${variable} `), `${variable}=${value}`)
    t.notOk(message?.includes('\n'), 'one line')
  }
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
  t.match(refusal({ NODE_ENV: 'production', JWT_SECRET: STRONG }), /^Invalid configuration: ENCRYPTION_KEY is required when NODE_ENV=production/)
  t.match(refusal({ NODE_ENV: 'production', JWT_SECRET: STRONG, ENCRYPTION_KEY: 'short' }), /ENCRYPTION_KEY must be at least 32 bytes/)
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
