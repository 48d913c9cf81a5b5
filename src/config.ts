import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { isValidUsername, passwordLengthProblem, USERNAME_RULE_IN_WORDS } from './rules.js'
import { ROLES, type Role } from './db/schema.js'

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
  /** The API's own origins (PUBLIC_ORIGIN): what the CSRF check accepts besides CORS_ORIGINS, never `Host`. */
  readonly publicOrigins: readonly string[]
  readonly cookieSecure: boolean
  /** SameSite of the auth and device cookies: `none` for a frontend on another site, else `lax`/`strict`. */
  readonly cookieSameSite: 'none' | 'lax' | 'strict'
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
  /** The device cookie: a browser that signed in as a user before passes that user's per-account limit. */
  readonly deviceCookieName: string
  readonly mfaPendingCookieName: string
  readonly issuer: string
  readonly audience: string
  /** Bearer token for GET /api/metrics; absent: no metrics route (404) and no per-request recording. */
  readonly metricsToken: string | undefined
  /** OTLP/HTTP base URL (`/v1/traces` is appended); absent: tracing off. */
  readonly otelEndpoint: string | undefined
  readonly otelServiceName: string
  /** Encrypts TOTP secrets at rest (AES-256-GCM, see src/secret-box.ts). */
  readonly encryptionKey: string
  /** Old keys still accepted for decryption while `npm run users -- reencrypt` moves secrets to the new one. */
  readonly encryptionPreviousKeys: readonly string[]
  /** Roles that must have a second factor to use the API (they may only enrol until they do). */
  readonly mfaRequiredRoles: readonly Role[]
  /** The frontend's base URL (APP_URL, no trailing slash): e-mailed links and the identity-provider landing point there. */
  readonly appUrl: string
  /** SMTP_URL (`smtp://user:pass@host:587`, `smtps://…`); absent: mails go to DATA_DIR/outbox (development only). */
  readonly smtpUrl: string | undefined
  /** MAIL_FROM: the sender of every mail (`Name <address>` or a bare address). */
  readonly mailFrom: string
  /**
   * Whether the e-mail features exist: with SMTP_URL, or outside production (the dev outbox). In
   * production without SMTP_URL they are off (their routes answer 404) rather than mail nowhere.
   */
  readonly mailEnabled: boolean
  /** The passkeys' relying party: the frontend's registrable domain (WEBAUTHN_RP_ID), never an IP address. */
  readonly webauthnRpId: string
  /** The name an authenticator shows beside the passkey (WEBAUTHN_RP_NAME). */
  readonly webauthnRpName: string
  /** The exact origins whose pages may run a passkey ceremony (WEBAUTHN_ORIGINS); each one's host is the RP id or under it. */
  readonly webauthnOrigins: readonly string[]
  /** Identity providers (OIDC_PROVIDERS), in the order given: the sign-in page shows them so. */
  readonly oidcProviders: readonly OidcProviderSettings[]
}

/** One identity provider as configured; its endpoints come from the issuer's discovery document at start. */
export interface OidcProviderSettings {
  /** Lower case, in the provider's URLs (`/api/auth/oidc/<id>/start`). */
  readonly id: string
  /** Shown on the sign-in button. */
  readonly name: string
  readonly issuer: string
  readonly clientId: string
  readonly clientSecret: string
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
const DEV_ENCRYPTION_KEY_FILE = 'encryption-key'

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

const isLoopbackOrigin = (origin: string) => /^http:\/\/(localhost|127\.0\.0\.1)(:\d+)?$/.test(origin)

/** Each origin must already be in the form a browser sends, as they are compared as exact strings. */
function readOriginList (env: Env, name: string, fallback: readonly string[], isProduction: boolean): string[] {
  const origins = readList(env, name, fallback)
  for (const origin of origins) {
    let parsed: URL
    try {
      parsed = new URL(origin)
    } catch {
      throw new ConfigError(name, `has "${origin}", which is not an origin like https://app.example.com`)
    }
    if (parsed.origin !== origin || !/^https?:$/.test(parsed.protocol)) {
      throw new ConfigError(name, `has "${origin}", which is not an origin like https://app.example.com (no path, no trailing slash)`)
    }
    // Cookies that ride along on a plain-HTTP origin can be read and replayed by anyone on the path.
    if (isProduction && parsed.protocol !== 'https:') throw new ConfigError(name, `has "${origin}": only https origins are allowed when NODE_ENV=production`)
  }
  return origins
}

function readCorsOrigins (env: Env, isProduction: boolean, frontendPort: number): string[] {
  if (isProduction) {
    // The development default names localhost: in production it would be a mistake, never a choice.
    const raw = env.CORS_ORIGINS?.trim()
    if (raw === undefined || raw === '') throw new ConfigError('CORS_ORIGINS', 'must be set when NODE_ENV=production (the frontend\'s https origins)')
    if (readList(env, 'CORS_ORIGINS', []).every(isLoopbackOrigin)) {
      throw new ConfigError('CORS_ORIGINS', 'is the development default; set the frontend\'s https origins')
    }
    return readOriginList(env, 'CORS_ORIGINS', [], true)
  }
  // By default the example frontend's own origins, wherever FRONTEND_PORT puts it (4100 when it is off,
  // for `npm run frontend` on its default port).
  return readOriginList(env, 'CORS_ORIGINS', frontendOrigins(frontendPort === 0 ? 4100 : frontendPort), false)
}

/**
 * The API's own origin, which the CSRF check accepts. Never taken from the request's Host header: a
 * DNS-rebinding page names itself there. Outside production, the loopback names of PORT.
 */
function readPublicOrigins (env: Env, isProduction: boolean, port: number): string[] {
  const raw = env.PUBLIC_ORIGIN?.trim()
  if (raw === undefined || raw === '') {
    if (isProduction) throw new ConfigError('PUBLIC_ORIGIN', 'must be set when NODE_ENV=production (the API\'s own https origin, e.g. https://api.example.com)')
    return [`http://127.0.0.1:${port}`, `http://localhost:${port}`]
  }
  return readOriginList(env, 'PUBLIC_ORIGIN', [], isProduction)
}

/**
 * The frontend's base URL. Links in mails and the identity-provider redirect end up here, so in
 * production it must be https; a path is allowed (a frontend under /app), a query or fragment is not.
 */
function readAppUrl (env: Env, isProduction: boolean, frontendPort: number, corsOrigins: readonly string[]): string {
  const raw = env.APP_URL?.trim()
  if (raw === undefined || raw === '') {
    // Production: the frontend's first (https) origin rather than a localhost link in a real user's mail.
    if (isProduction && corsOrigins[0] !== undefined) return corsOrigins[0]
    return `http://localhost:${frontendPort === 0 ? 4100 : frontendPort}`
  }
  let parsed: URL
  try {
    parsed = new URL(raw)
  } catch {
    throw new ConfigError('APP_URL', `has "${raw}", which is not a URL like https://app.example.com`)
  }
  if (!/^https?:$/.test(parsed.protocol) || parsed.search !== '' || parsed.hash !== '' || parsed.username !== '' || parsed.password !== '') {
    throw new ConfigError('APP_URL', `has "${raw}": use an http(s) URL without query, fragment or credentials`)
  }
  if (isProduction && parsed.protocol !== 'https:') throw new ConfigError('APP_URL', `has "${raw}": only https is allowed when NODE_ENV=production`)
  return parsed.href.replace(/\/+$/, '')
}

/** Where the frontend is: its port, its origins (the CORS allow-list) and its base URL, which defaults from them. */
function readFrontend (env: Env, isProduction: boolean) {
  const frontendPort = readInteger(env, 'FRONTEND_PORT', 4100, 0, 65_535)
  const corsOrigins = readCorsOrigins(env, isProduction, frontendPort)
  return { frontendPort, corsOrigins, appUrl: readAppUrl(env, isProduction, frontendPort, corsOrigins) }
}

/** Config.mailEnabled: shared with loadMailConfig, so the CLI mails exactly when the server would. */
const isMailEnabled = (smtpUrl: string | undefined, isProduction: boolean) => smtpUrl !== undefined || !isProduction

function readSmtpUrl (env: Env): string | undefined {
  const raw = env.SMTP_URL?.trim()
  if (raw === undefined || raw === '') return undefined
  let parsed: URL
  try {
    parsed = new URL(raw)
  } catch {
    throw new ConfigError('SMTP_URL', 'is not a URL like smtp://user:pass@mail.example.com:587 or smtps://…:465')
  }
  if (parsed.protocol !== 'smtp:' && parsed.protocol !== 'smtps:') throw new ConfigError('SMTP_URL', `must start with smtp:// or smtps://, got ${parsed.protocol}//`)
  if (parsed.hostname === '') throw new ConfigError('SMTP_URL', 'names no host')
  return raw
}

// A display name and an address in angle brackets, or a bare address; no line breaks (a header
// injection) and nothing nodemailer would have to guess about.
const MAIL_FROM_PATTERN = /^(?:[^<>\r\n]*<[^<>@\s]+@[^<>@\s]+>|[^<>@\s]+@[^<>@\s]+)$/

function readMailFrom (env: Env, isProduction: boolean, smtpUrl: string | undefined): string {
  const raw = env.MAIL_FROM?.trim()
  if (raw === undefined || raw === '') {
    // A real mail server needs a sender of the site's own domain (SPF, DKIM): no guessing it.
    if (isProduction && smtpUrl !== undefined) throw new ConfigError('MAIL_FROM', 'must be set with SMTP_URL when NODE_ENV=production (e.g. "Tasks <no-reply@example.com>")')
    return 'cookie-auth-api <no-reply@localhost>'
  }
  if (!MAIL_FROM_PATTERN.test(raw)) throw new ConfigError('MAIL_FROM', `has "${raw}", which is not an address like no-reply@example.com or "Tasks <no-reply@example.com>"`)
  return raw
}

const isIpAddress = (host: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':') || host.startsWith('[')

/** A browser accepts an RP id for a page only when it is the page's host or a domain above it. */
const rpIdServes = (rpId: string, origin: string) => {
  const host = new URL(origin).hostname
  return host === rpId || host.endsWith(`.${rpId}`)
}

/**
 * The passkeys' relying party. The ceremony runs in the frontend's page, so the RP id is the
 * frontend's domain (by default APP_URL's host: `localhost` in development), and only origins on
 * that domain can use it. Left unset, WEBAUTHN_ORIGINS takes the CORS origins the RP id can serve
 * (the development default also lists http://127.0.0.1:4100, where no passkey can work: an IP
 * address is never an RP id), or APP_URL's origin when none can. Whatever was set, every origin
 * must fit the RP id, or the start stops here rather than every ceremony failing in the browser.
 */
function readWebauthn (env: Env, isProduction: boolean, appUrl: string, corsOrigins: readonly string[]) {
  const raw = env.WEBAUTHN_RP_ID?.trim().toLowerCase()
  const rpId = raw === undefined || raw === '' ? new URL(appUrl).hostname : raw
  if (!/^[a-z0-9.-]+$/.test(rpId) || rpId.startsWith('.') || rpId.endsWith('.') || isIpAddress(rpId)) {
    throw new ConfigError('WEBAUTHN_RP_ID', `is "${rpId}": it must be a domain name (the frontend's, e.g. example.com), not an IP address or URL`)
  }
  const rpName = env.WEBAUTHN_RP_NAME?.trim() || 'cookie-auth-api'
  if (env.WEBAUTHN_ORIGINS !== undefined && env.WEBAUTHN_ORIGINS.trim() !== '') {
    const origins = readOriginList(env, 'WEBAUTHN_ORIGINS', [], isProduction)
    const misfit = origins.find((origin) => !rpIdServes(rpId, origin))
    if (misfit !== undefined) {
      throw new ConfigError('WEBAUTHN_ORIGINS', `has "${misfit}", whose host is not ${rpId} nor under it (WEBAUTHN_RP_ID=${rpId}): browsers would refuse every passkey there`)
    }
    return { webauthnRpId: rpId, webauthnRpName: rpName, webauthnOrigins: origins }
  }
  const served = corsOrigins.filter((origin) => rpIdServes(rpId, origin))
  const origins = served.length > 0 ? served : [new URL(appUrl).origin].filter((origin) => rpIdServes(rpId, origin))
  if (origins.length === 0) {
    throw new ConfigError('WEBAUTHN_RP_ID', `is "${rpId}", and neither CORS_ORIGINS nor APP_URL has an origin on it: set WEBAUTHN_RP_ID to the frontend's domain, or WEBAUTHN_ORIGINS`)
  }
  return { webauthnRpId: rpId, webauthnRpName: rpName, webauthnOrigins: origins }
}

function readSameSite (env: Env, cookieSecure: boolean): Config['cookieSameSite'] {
  const raw = env.COOKIE_SAMESITE?.trim().toLowerCase()
  if (raw === undefined || raw === '') return cookieSecure ? 'none' : 'lax'
  if (raw !== 'none' && raw !== 'lax' && raw !== 'strict') throw new ConfigError('COOKIE_SAMESITE', `must be none, lax or strict, got "${raw}"`)
  // Browsers drop a SameSite=None cookie that is not Secure.
  if (raw === 'none' && !cookieSecure) throw new ConfigError('COOKIE_SAMESITE', 'cannot be none with COOKIE_SECURE=false (browsers refuse it)')
  return raw
}

/**
 * DATA_DIR holds the embedded database (password hashes, sessions) and the development secret: only
 * the service user may enter it. Created 0700; an existing one that group or others can reach stops
 * the start rather than be used.
 */
export function assertPrivateDataDir (dataDir: string): void {
  const mode = statSync(dataDir).mode & 0o777
  if ((mode & 0o077) !== 0) throw new ConfigError('DATA_DIR', `${dataDir} has mode 0${mode.toString(8)}, open to group or others: chmod 700 ${dataDir}`)
}

function byteLength (secret: string): number {
  return Buffer.byteLength(secret, 'utf8')
}

/**
 * Outside production a missing secret is generated once and kept in DATA_DIR, so sessions survive a
 * restart; an in-memory database gets a throwaway one.
 */
function developmentSecret (dataDir: string, fileName = DEV_SECRET_FILE): string {
  if (dataDir.startsWith('memory://')) return randomBytes(MIN_SECRET_BYTES).toString('base64url')
  const file = join(dataDir, fileName)
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  assertPrivateDataDir(dataDir)
  try {
    // Checked like a production secret: private to the service user, and long enough.
    const mode = statSync(file).mode & 0o777
    if ((mode & 0o077) !== 0) throw new ConfigError('DATA_DIR', `holds ${DEV_SECRET_FILE} with mode 0${mode.toString(8)}, readable beyond its owner: chmod 600 ${file}`)
    const secret = readFileSync(file, 'utf8').trim()
    if (byteLength(secret) < MIN_SECRET_BYTES) throw new ConfigError('DATA_DIR', `holds a ${DEV_SECRET_FILE} under ${MIN_SECRET_BYTES} bytes: delete ${file} to generate a new one`)
    return secret
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const secret = randomBytes(48).toString('base64url')
  // 0600: the secret signs every session (or unlocks every TOTP secret); only the service user may read it.
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

function readPreviousSecrets (env: Env, name = 'JWT_PREVIOUS_SECRETS'): string[] {
  const secrets = readList(env, name, [])
  for (const secret of secrets) {
    if (byteLength(secret) < MIN_SECRET_BYTES) throw new ConfigError(name, `has a key under ${MIN_SECRET_BYTES} bytes`)
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

/** Same rules as JWT_SECRET: at least 32 bytes, required in production, else generated once into DATA_DIR. */
function readEncryptionKey (env: Env, isProduction: boolean, dataDir: string): string {
  const key = env.ENCRYPTION_KEY
  if (key === undefined || key === '') {
    if (isProduction) throw new ConfigError('ENCRYPTION_KEY', `is required when NODE_ENV=production (at least ${MIN_SECRET_BYTES} random bytes, e.g. \`openssl rand -base64 48\`)`)
    return developmentSecret(dataDir, DEV_ENCRYPTION_KEY_FILE)
  }
  if (byteLength(key) < MIN_SECRET_BYTES) throw new ConfigError('ENCRYPTION_KEY', `must be at least ${MIN_SECRET_BYTES} bytes, got ${byteLength(key)}`)
  return key
}

// The id travels in URLs and names environment variables (OIDC_<ID>_…), so it stays plain.
const OIDC_PROVIDER_ID = /^[a-z][a-z0-9_]{0,31}$/

function readOidcProviders (env: Env, isProduction: boolean): OidcProviderSettings[] {
  const ids = readList(env, 'OIDC_PROVIDERS', []).map((id) => id.toLowerCase())
  return ids.map((id) => {
    if (!OIDC_PROVIDER_ID.test(id)) throw new ConfigError('OIDC_PROVIDERS', `has "${id}": an id is a letter, then up to 31 letters, digits or _`)
    if (ids.indexOf(id) !== ids.lastIndexOf(id)) throw new ConfigError('OIDC_PROVIDERS', `names "${id}" twice`)
    const prefix = `OIDC_${id.toUpperCase()}_`
    const required = (name: string) => {
      const value = env[prefix + name]?.trim()
      if (value === undefined || value === '') throw new ConfigError(prefix + name, `must be set for the provider "${id}" in OIDC_PROVIDERS`)
      return value
    }
    const issuer = required('ISSUER')
    let url: URL
    try {
      url = new URL(issuer)
    } catch {
      throw new ConfigError(prefix + 'ISSUER', `has "${issuer}", which is not a URL like https://accounts.google.com`)
    }
    // An http issuer's keys and tokens could be swapped on the way: loopback test providers only.
    if (url.protocol !== 'https:' && (isProduction || url.protocol !== 'http:')) {
      throw new ConfigError(prefix + 'ISSUER', `has "${issuer}": only https issuers are allowed${isProduction ? ' when NODE_ENV=production' : ' (or http outside production)'}`)
    }
    return { id, name: env[prefix + 'NAME']?.trim() || id, issuer, clientId: required('CLIENT_ID'), clientSecret: required('CLIENT_SECRET') }
  })
}

function readRoles (env: Env, name: string): Role[] {
  const roles = readList(env, name, [])
  for (const role of roles) {
    if (!(ROLES as readonly string[]).includes(role)) throw new ConfigError(name, `has "${role}", which is not a role (${ROLES.join(', ')})`)
  }
  return roles as Role[]
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

/**
 * The keys that seal TOTP secrets, for the CLI that re-seals them after a rotation: the same rules
 * (and the same development key in DATA_DIR) as the server's.
 */
export function loadEncryptionConfig (env: Env = process.env): { encryptionKey: string, encryptionPreviousKeys: string[] } {
  const { dataDir } = loadDatabaseConfig(env)
  return {
    encryptionKey: readEncryptionKey(env, env.NODE_ENV === 'production', dataDir),
    encryptionPreviousKeys: readPreviousSecrets(env, 'ENCRYPTION_PREVIOUS_KEYS'),
  }
}

/**
 * What the users CLI needs to tell a user by mail about an administrator's change, read by the
 * server's rules: undefined when the e-mail features are off; else the frontend's URL (named in the
 * mail) and the keys that seal the outbox row. The CLI only writes the row, in the change's
 * transaction: the running server's sender sends it (through SMTP_URL, or to the development outbox).
 */
export function loadMailConfig (env: Env = process.env): { appUrl: string, encryptionKey: string, encryptionPreviousKeys: string[] } | undefined {
  const isProduction = env.NODE_ENV === 'production'
  if (!isMailEnabled(readSmtpUrl(env), isProduction)) return undefined
  return { appUrl: readFrontend(env, isProduction).appUrl, ...loadEncryptionConfig(env) }
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

  const port = readInteger(env, 'PORT', 8086, 0, 65_535)

  const config: Omit<Config, 'frontendPort' | 'corsOrigins' | 'appUrl' | 'smtpUrl' | 'mailFrom' | 'mailEnabled' | 'webauthnRpId' | 'webauthnRpName' | 'webauthnOrigins'> = {
    isProduction,
    port,
    host: env.HOST || '127.0.0.1',
    databaseUrl: readDatabaseUrl(env),
    databasePrepare: readBoolean(env, 'DATABASE_PREPARE', true),
    dataDir,
    jwtSecret: readSecret(env, isProduction, dataDir),
    jwtPreviousSecrets: readPreviousSecrets(env),
    publicOrigins: readPublicOrigins(env, isProduction, port),
    cookieSecure,
    cookieSameSite: readSameSite(env, cookieSecure),
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
    // The docs describe every route to whoever asks: opt in for production.
    docs: readBoolean(env, 'DOCS', !isProduction),
    logLevel,
    // `__Host-` pins the cookie to this host, path / and Secure; `__Secure-` requires Secure. Both
    // prefixes need Secure, so plain-HTTP development drops them.
    accessCookieName: cookieSecure ? '__Host-access_token' : 'access_token',
    refreshCookieName: cookieSecure ? '__Secure-refresh_token' : 'refresh_token',
    deviceCookieName: cookieSecure ? '__Secure-device' : 'device',
    issuer: 'cookie-auth-api',
    audience: 'cookie-auth-api',
    metricsToken: readMetricsToken(env),
    otelEndpoint: readOtelEndpoint(env),
    otelServiceName: env.OTEL_SERVICE_NAME || 'cookie-auth-api',
    mfaPendingCookieName: cookieSecure ? '__Secure-mfa_pending' : 'mfa_pending',
    encryptionKey: readEncryptionKey(env, isProduction, dataDir),
    encryptionPreviousKeys: readPreviousSecrets(env, 'ENCRYPTION_PREVIOUS_KEYS'),
    mfaRequiredRoles: readRoles(env, 'MFA_REQUIRED_ROLES'),
    oidcProviders: readOidcProviders(env, isProduction),
  }
  const { frontendPort, corsOrigins, appUrl } = readFrontend(env, isProduction)
  const smtpUrl = readSmtpUrl(env)
  return Object.freeze({
    ...config,
    frontendPort,
    corsOrigins,
    appUrl,
    smtpUrl,
    mailFrom: readMailFrom(env, isProduction, smtpUrl),
    mailEnabled: isMailEnabled(smtpUrl, isProduction),
    ...readWebauthn(env, isProduction, appUrl, corsOrigins),
  })
}
