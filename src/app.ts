import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Ajv, type Options as AjvOptions } from 'ajv'
import addFormatsModule from 'ajv-formats'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import configPlugin from '../plugins/config.js'
import errorsPlugin from '../plugins/errors.js'
import securityPlugin from '../plugins/security.js'
import corsPlugin from '../plugins/cors.js'
import csrfPlugin from '../plugins/csrf.js'
import dbPlugin from '../plugins/db.js'
import dbBreakerPlugin from '../plugins/db-breaker.js'
import pressurePlugin, { type PressureOptions } from '../plugins/pressure.js'
import rateLimitPlugin from '../plugins/rate-limit.js'
import authPlugin from '../plugins/auth.js'
import docsPlugin from '../plugins/docs.js'
import authRoutes from '../routes/auth.js'
import mfaRoutes from '../routes/mfa.js'
import healthRoutes from '../routes/health.js'
import tasksRoutes from '../routes/tasks.js'
import usersRoutes from '../routes/users.js'
import auditRoutes from '../routes/audit.js'
import type { Config } from './config.js'
import type { Database } from './db/client.js'

// ajv-formats is CommonJS; under nodenext its default import is the module, whose `default` is the plugin.
const addFormats = addFormatsModule.default

export interface BuildAppOptions {
  config: Config
  /** A database opened by the caller; by default the app opens (and closes) the one in the config. */
  database?: Database
  /** Overrides for Fastify's own options, e.g. a logger that writes to a test stream. */
  fastify?: FastifyServerOptions
  /** Load-shedding thresholds; the defaults suit a server process. */
  pressure?: PressureOptions
}

// What never reaches a log line: credentials in headers, cookies set, and any password in a body.
export const LOG_REDACTIONS = [
  'req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]',
  '*.password', '*.currentPassword', '*.newPassword', '*.passwordHash', '*.access_token',
  // Not `*.code`: that would hide error codes (err.code) from every log line.
  '*.recoveryCode', '*.recoveryCodes', '*.mfa_token', '*.secret', '*.otpauthUrl', '*.totpSecret',
]

function newAjv (options: AjvOptions): Ajv {
  const ajv = new Ajv({ useDefaults: true, allErrors: false, removeAdditional: false, ...options })
  addFormats(ajv)
  return ajv
}

/**
 * Registers plugins, then routes, in an order that is itself a security property: headers first,
 * CORS before anything can refuse a preflight, CSRF before any body is read, rate limits before any
 * password is hashed. Never listens: that is server.ts's job.
 */
export async function buildApp ({ config, database, fastify = {}, pressure = {} }: BuildAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: config.logLevel, redact: { paths: LOG_REDACTIONS, censor: '[redacted]' } },
    // X-Forwarded-For is believed only from the proxies named in TRUST_PROXY.
    trustProxy: config.trustProxy.length > 0 ? [...config.trustProxy] : false,
    bodyLimit: 1024 * 1024,
    // While draining after SIGTERM, a request that arrives on an open keep-alive connection is served
    // (the connection then closes) rather than refused with a 503: a rolling restart fails nothing.
    return503OnClosing: false,
    // Fastify's default Ajv strips unknown fields silently; ours refuses them (`role` can never be
    // mass-assigned) and never coerces bodies ("1" is not a boolean). Query strings and params
    // arrive as text, so they are coerced.
    ...fastify,
  }).withTypeProvider<TypeBoxTypeProvider>()

  const bodyAjv = newAjv({ coerceTypes: false })
  const urlAjv = newAjv({ coerceTypes: 'array' })
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : urlAjv).compile(schema))

  await app.register(configPlugin, { config })
  await app.register(errorsPlugin)
  await app.register(securityPlugin)
  await app.register(corsPlugin)
  await app.register(pressurePlugin, pressure)
  await app.register(csrfPlugin)
  await app.register(dbPlugin, database === undefined ? {} : { database })
  await app.register(dbBreakerPlugin)
  await app.register(rateLimitPlugin)
  await app.register(authPlugin)
  await app.register(docsPlugin)

  await app.register(healthRoutes, { prefix: '/api/health' })
  await app.register(authRoutes, { prefix: '/api/auth' })
  await app.register(mfaRoutes, { prefix: '/api/auth' })
  await app.register(tasksRoutes, { prefix: '/api/tasks' })
  await app.register(usersRoutes, { prefix: '/api/users' })
  await app.register(auditRoutes, { prefix: '/api/audit' })

  return app
}
