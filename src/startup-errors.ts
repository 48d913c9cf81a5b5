import { ConfigError } from './config.js'
import { DataDirInUse } from './db/data-dir-lock.js'
import { OidcDiscoveryFailed } from '../plugins/oidc.js'

/** The error codes on an error and its causes (Drizzle and postgres.js wrap each other's errors). */
function codes (error: unknown): string[] {
  const found: string[] = []
  for (let current = error, depth = 0; current instanceof Object && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string') found.push(code)
    current = (current as { cause?: unknown }).cause
  }
  return found
}

/** Where DATABASE_URL points, without its password: `host:port/database`. */
function target (databaseUrl: string | undefined): string {
  if (databaseUrl === undefined) return 'the database'
  try {
    const url = new URL(databaseUrl)
    return `${url.hostname}:${url.port || '5432'}${url.pathname}`
  } catch {
    return 'the database in DATABASE_URL'
  }
}

const TLS_CODE = /^(ERR_SSL|ERR_TLS|EPROTO$|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|CERT_|HOSTNAME_MISMATCH|ERR_OSSL)/

export interface StartupContext {
  databaseUrl: string | undefined
  port?: number | undefined
  host?: string | undefined
}

/**
 * One line naming the cause and the fix, for the mistakes a start meets most (a database that is
 * missing, refused, unreachable or speaks TLS differently; a port in use; an embedded database already
 * open): a stack trace would bury the one thing to do. Undefined for anything else, which keeps its stack.
 */
export function describeStartupError (error: unknown, { databaseUrl, port, host }: StartupContext): string | undefined {
  if (error instanceof ConfigError) return error.message
  if (error instanceof DataDirInUse) return error.message
  if (error instanceof OidcDiscoveryFailed) return error.message
  const all = codes(error)
  const has = (code: string) => all.includes(code)
  const where = target(databaseUrl)
  const message = (error as Error | undefined)?.message ?? ''
  if (has('EADDRINUSE')) return `Cannot start: port ${port ?? '?'} on ${host ?? '?'} is already in use (another \`npm start\`?); stop that process or set PORT`
  if (has('EADDRNOTAVAIL')) return `Cannot start: ${host ?? 'HOST'} is not an address of this machine; set HOST (e.g. 127.0.0.1)`
  if (has('EACCES') && port !== undefined && port < 1024) return `Cannot start: port ${port} needs privileges; set PORT to 1024 or above`
  if (has('3D000')) {
    const name = where.split('/')[1] ?? 'it'
    return `Cannot start: the database ${where} does not exist; create it first (\`createdb ${name}\`, or \`create database ${name}\` in psql), or fix DATABASE_URL`
  }
  if (has('28P01') || has('28000')) return `Cannot start: ${where} refused the user or password in DATABASE_URL; check both (and pg_hba.conf)`
  if (all.some((code) => TLS_CODE.test(code)) || /\bSSL\b|\bTLS\b|secure TLS/i.test(message)) {
    return `Cannot start: the TLS handshake with ${where} failed (${message.split('\n')[0]}); check sslmode in DATABASE_URL (e.g. sslmode=disable for a local server without TLS)`
  }
  if (has('ECONNREFUSED')) return `Cannot start: nothing accepts connections at ${where}; start Postgres, or fix the host and port in DATABASE_URL`
  if (has('ENOTFOUND') || has('EAI_AGAIN')) return `Cannot start: the host in DATABASE_URL (${where}) is not found; fix DATABASE_URL`
  if (has('CONNECT_TIMEOUT') || has('ETIMEDOUT') || has('EHOSTUNREACH')) return `Cannot start: ${where} did not answer in time; check that it is reachable from here (host, port, firewall)`
  if (has('ECONNRESET') && databaseUrl !== undefined && /sslmode|ssl=/.test(databaseUrl)) {
    return `Cannot start: ${where} closed the connection during the TLS handshake; check sslmode in DATABASE_URL (the server may not offer TLS)`
  }
  return undefined
}
