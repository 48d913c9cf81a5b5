import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { isValidUsername, passwordLengthProblem, USERNAME_RULE_IN_WORDS } from './rules.js'

export interface Config {
  readonly isProduction: boolean
  readonly port: number
  readonly host: string
  /** Absent: the embedded database (PGlite) in `dataDir`. */
  readonly databaseUrl: string | undefined
  /**
   * Named prepared statements (postgres.js `prepare`). Off behind a transaction-mode pooler such as
   * PgBouncer 1.18, which cannot keep a statement prepared on one server connection for the next.
   */
  readonly databasePrepare: boolean
  /** A folder, or `memory://` for a throwaway in-memory database (tests). */
  readonly dataDir: string
  readonly jwtSecret: string
  readonly jwtPreviousSecrets: readonly string[]
  readonly corsOrigins: readonly string[]
  readonly cookieSecure: boolean
  readonly cookiePartitioned: boolean
  readonly trustProxy: readonly string[]
  readonly accessTokenTtl: number
  readonly refreshTokenTtl: number
  readonly sessionMaxAge: number
  readonly refreshReuseGrace: number
  readonly adminUsername: string | undefined
  readonly adminPassword: string | undefined
  readonly migrateOnStart: boolean
  readonly redisUrl: string | undefined
  /** Client IPs exempt from rate limits (benchmarks, health checkers): none by default. */
  readonly rateLimitAllowList: readonly string[]
  readonly docs: boolean
  readonly frontendPort: number
  readonly logLevel: string
  readonly accessCookieName: string
  readonly refreshCookieName: string
  readonly issuer: string
  readonly audience: string
  /** Bearer token for GET /api/metrics; absent: no metrics route (404) and no per-request recording. */
  readonly metricsToken: string | undefined
  /** OTLP/HTTP base URL (`/v1/traces` is appended); absent: tracing off. */
  readonly otelEndpoint: string | undefined
  readonly otelServiceName: string
}

export class ConfigError extends Error {
  constructor (readonly variable: string, problem: string) {
    super(`Invalid configuration: ${variable} ${problem}`)
    this.name = 'ConfigError'
  }
}

type Env = Readonly<Record<string, string | undefined>>

const MIN_SECRET_BYTES = 32
const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
const DEV_SECRET_FILE = 'jwt-secret'

function readInteger (env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`)
  const value = Number(raw)
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`)
  return value
}

function readBoolean (env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase()
  if (raw === undefined || raw === '') return fallback
  if (raw === 'true' || raw === '1') return true
  if (raw === 'false' || raw === '0') return false
  throw new ConfigError(name, `must be true or false, got "${raw}"`)
}

function readList (env: Env, name: string, fallback: readonly string[]): string[] {
  const raw = env[name]
  if (raw === undefined) return [...fallback]
  return raw.split(',').map((item) => item.trim()).filter((item) => item !== '')
}

/** The origins of the example frontend that development serves on FRONTEND_PORT (both loopback names). */
export function frontendOrigins (frontendPort: number): string[] {
  return [`http://localhost:${frontendPort}`, `http://127.0.0.1:${frontendPort}`]
}

function readOrigins (env: Env, frontendPort: number): string[] {
  // By default the example frontend's own origins, wherever FRONTEND_PORT puts it (4100 when it is off,
  // for `npm run frontend` on its default port).
  const origins = readList(env, 'CORS_ORIGINS', frontendOrigins(frontendPort === 0 ? 4100 : frontendPort))
  for (const origin of origins) {
    // Origins are compared as exact strings, so each must already be in the form a browser sends.
    let parsed: URL
    try {
      parsed = new URL(origin)
    } catch {
      throw new ConfigError('CORS_ORIGINS', `has "${origin}", which is not an origin like https://app.example.com`)
    }
    if (parsed.origin !== origin || !/^https?:$/.test(parsed.protocol)) {
      throw new ConfigError('CORS_ORIGINS', `has "${origin}", which is not an origin like https://app.example.com (no path, no trailing slash)`)
    }
  }
  return origins
}

function byteLength (secret: string): number {
  return Buffer.byteLength(secret, 'utf8')
}

/**
 * Outside production a missing secret is generated once and kept in DATA_DIR, so sessions survive a
 * restart; an in-memory database gets a throwaway one.
 */
function developmentSecret (dataDir: string): string {
  if (dataDir.startsWith('memory://')) return randomBytes(MIN_SECRET_BYTES).toString('base64url')
  const file = join(dataDir, DEV_SECRET_FILE)
  try {
    return readFileSync(file, 'utf8').trim()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  mkdirSync(dataDir, { recursive: true })
  const secret = randomBytes(48).toString('base64url')
  // 0600: the secret signs every session; only the service user may read it.
  writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' })
  return secret
}

function readSecret (env: Env, isProduction: boolean, dataDir: string): string {
  const secret = env.JWT_SECRET
  if (secret === undefined || secret === '') {
    if (isProduction) throw new ConfigError('JWT_SECRET', `is required when NODE_ENV=production (at least ${MIN_SECRET_BYTES} random bytes, e.g. \`openssl rand -base64 48\`)`)
    return developmentSecret(dataDir)
  }
  if (byteLength(secret) < MIN_SECRET_BYTES) throw new ConfigError('JWT_SECRET', `must be at least ${MIN_SECRET_BYTES} bytes, got ${byteLength(secret)}`)
  return secret
}

function readPreviousSecrets (env: Env): string[] {
  const secrets = readList(env, 'JWT_PREVIOUS_SECRETS', [])
  for (const secret of secrets) {
    if (byteLength(secret) < MIN_SECRET_BYTES) throw new ConfigError('JWT_PREVIOUS_SECRETS', `has a key under ${MIN_SECRET_BYTES} bytes`)
  }
  return secrets
}

// A scrape token is a bearer secret like any other: short ones can be guessed.
const MIN_METRICS_TOKEN_LENGTH = 16

function readMetricsToken (env: Env): string | undefined {
  const token = env.METRICS_TOKEN
  if (token === undefined || token === '') return undefined
  if (token.length < MIN_METRICS_TOKEN_LENGTH) throw new ConfigError('METRICS_TOKEN', `must be at least ${MIN_METRICS_TOKEN_LENGTH} characters (e.g. \`openssl rand -hex 32\`)`)
  if (!/^[\x21-\x7e]+$/.test(token)) throw new ConfigError('METRICS_TOKEN', 'must be printable ASCII without spaces (it travels in an Authorization header)')
  return token
}

function readOtelEndpoint (env: Env): string | undefined {
  const raw = env.OTEL_EXPORTER_OTLP_ENDPOINT
  if (raw === undefined || raw === '') return undefined
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ConfigError('OTEL_EXPORTER_OTLP_ENDPOINT', `must be an http:// or https:// URL, got "${raw}"`)
  }
  if (!/^https?:$/.test(url.protocol)) throw new ConfigError('OTEL_EXPORTER_OTLP_ENDPOINT', `must be an http:// or https:// URL, got "${raw}"`)
  return raw.replace(/\/+$/, '')
}

function readDatabaseUrl (env: Env): string | undefined {
  const url = env.DATABASE_URL
  if (url === undefined || url === '') return undefined
  if (!/^postgres(ql)?:\/\//.test(url)) throw new ConfigError('DATABASE_URL', 'must be a postgres:// or postgresql:// URL')
  return url
}

/**
 * Only what the database tools (`db:migrate`, the users CLI) need: they sign no token, so they must
 * not require JWT_SECRET in production nor generate a development secret.
 */
export function loadDatabaseConfig (env: Env = process.env): { databaseUrl: string | undefined, databasePrepare: boolean, dataDir: string } {
  return {
    databaseUrl: readDatabaseUrl(env),
    databasePrepare: readBoolean(env, 'DATABASE_PREPARE', true),
    dataDir: env.DATA_DIR !== undefined && env.DATA_DIR !== '' ? env.DATA_DIR : './data',
  }
}

/** The one place that reads the environment: a frozen, typed Config, or a ConfigError naming the variable. */
export function loadConfig (env: Env = process.env): Config {
  const isProduction = env.NODE_ENV === 'production'
  const dataDir = env.DATA_DIR !== undefined && env.DATA_DIR !== '' ? env.DATA_DIR : './data'

  const cookieSecure = readBoolean(env, 'COOKIE_SECURE', true)
  if (isProduction && !cookieSecure) throw new ConfigError('COOKIE_SECURE', 'cannot be false when NODE_ENV=production')

  const logLevel = env.LOG_LEVEL ?? 'info'
  if (!LOG_LEVELS.has(logLevel)) throw new ConfigError('LOG_LEVEL', `must be one of ${[...LOG_LEVELS].join(', ')}`)

  const accessTokenTtl = readInteger(env, 'ACCESS_TOKEN_TTL', 900, 1, 86_400)
  const refreshTokenTtl = readInteger(env, 'REFRESH_TOKEN_TTL', 1_209_600, 60, 31_536_000)
  const sessionMaxAge = readInteger(env, 'SESSION_MAX_AGE', 2_592_000, 60, 31_536_000)

  const adminUsername = env.ADMIN_USERNAME || undefined
  const adminPassword = env.ADMIN_PASSWORD || undefined
  if ((adminUsername === undefined) !== (adminPassword === undefined)) {
    throw new ConfigError(adminUsername === undefined ? 'ADMIN_USERNAME' : 'ADMIN_PASSWORD', 'must be set together with ' + (adminUsername === undefined ? 'ADMIN_PASSWORD' : 'ADMIN_USERNAME'))
  }
  if (adminUsername !== undefined && !isValidUsername(adminUsername)) throw new ConfigError('ADMIN_USERNAME', `must be ${USERNAME_RULE_IN_WORDS}`)
  const adminPasswordProblem = adminPassword === undefined ? undefined : passwordLengthProblem(adminPassword)
  if (adminPasswordProblem !== undefined) throw new ConfigError('ADMIN_PASSWORD', adminPasswordProblem)

  const redisUrl = env.REDIS_URL || undefined
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) throw new ConfigError('REDIS_URL', 'must be a redis:// or rediss:// URL')

  const frontendPort = readInteger(env, 'FRONTEND_PORT', 4100, 0, 65_535)

  const config: Config = {
    isProduction,
    port: readInteger(env, 'PORT', 8086, 0, 65_535),
    host: env.HOST || '127.0.0.1',
    databaseUrl: readDatabaseUrl(env),
    databasePrepare: readBoolean(env, 'DATABASE_PREPARE', true),
    dataDir,
    jwtSecret: readSecret(env, isProduction, dataDir),
    jwtPreviousSecrets: readPreviousSecrets(env),
    corsOrigins: readOrigins(env, frontendPort),
    cookieSecure,
    cookiePartitioned: cookieSecure && readBoolean(env, 'COOKIE_PARTITIONED', true),
    trustProxy: readList(env, 'TRUST_PROXY', []),
    accessTokenTtl,
    refreshTokenTtl,
    sessionMaxAge,
    refreshReuseGrace: readInteger(env, 'REFRESH_REUSE_GRACE', 10, 0, 300),
    adminUsername,
    adminPassword,
    migrateOnStart: readBoolean(env, 'MIGRATE_ON_START', true),
    redisUrl,
    rateLimitAllowList: readList(env, 'RATE_LIMIT_ALLOWLIST', []),
    docs: readBoolean(env, 'DOCS', true),
    frontendPort,
    logLevel,
    // `__Host-` pins the cookie to this host, path / and Secure; `__Secure-` requires Secure. Both
    // prefixes need Secure, so plain-HTTP development drops them.
    accessCookieName: cookieSecure ? '__Host-access_token' : 'access_token',
    refreshCookieName: cookieSecure ? '__Secure-refresh_token' : 'refresh_token',
    issuer: 'cookie-auth-api',
    audience: 'cookie-auth-api',
    metricsToken: readMetricsToken(env),
    otelEndpoint: readOtelEndpoint(env),
    otelServiceName: env.OTEL_SERVICE_NAME || 'cookie-auth-api',
  }
  return Object.freeze(config)
}
