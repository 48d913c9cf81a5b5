import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Ajv, type Options as AjvOptions } from 'ajv'
import addFormatsModule from 'ajv-formats'
import Fastify, { LogController, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import configPlugin from '../plugins/config.js'
import tracingPlugin from '../plugins/tracing.js'
import metricsPlugin from '../plugins/metrics.js'
import errorsPlugin from '../plugins/errors.js'
import securityPlugin from '../plugins/security.js'
import corsPlugin from '../plugins/cors.js'
import csrfPlugin from '../plugins/csrf.js'
import dbPlugin from '../plugins/db.js'
import dbBreakerPlugin from '../plugins/db-breaker.js'
import purgePlugin from '../plugins/purge.js'
import pressurePlugin, { type PressureOptions } from '../plugins/pressure.js'
import rateLimitPlugin from '../plugins/rate-limit.js'
import auditPlugin from '../plugins/audit.js'
import authPlugin from '../plugins/auth.js'
import accountLimitPlugin from '../plugins/account-limit.js'
import docsPlugin from '../plugins/docs.js'
import mailerPlugin from '../plugins/mailer.js'
import oidcPlugin from '../plugins/oidc.js'
import authRoutes from '../routes/auth.js'
import mfaRoutes from '../routes/mfa.js'
import emailRoutes from '../routes/email.js'
import oidcRoutes from '../routes/oidc.js'
import passkeysRoutes from '../routes/passkeys.js'
import healthRoutes from '../routes/health.js'
import tasksRoutes from '../routes/tasks.js'
import usersRoutes from '../routes/users.js'
import auditRoutes from '../routes/audit.js'
import metricsRoutes from '../routes/metrics.js'
import type { MailerOptions } from '../plugins/mailer.js'
import type { Config } from './config.js'
import { validationError } from './validation-messages.js'
import { loggableUrl } from './log-urls.js'
import type { Database } from './db/client.js'

// ajv-formats is CommonJS; under nodenext its default import is the module, whose `default` is the plugin.
const addFormats = addFormatsModule.default

export interface BuildAppOptions {
  config: Config
  /** A database opened by the caller; by default the app opens (and closes) the one in the config. */
  database?: Database
  /** Overrides for Fastify's own options. */
  fastify?: FastifyServerOptions
  /** Where log lines go instead of stdout (tests read them), with the same level and redactions. */
  logStream?: { write (line: string): void }
  /** With logStream: the level to log at (default: the config's). */
  logLevel?: string
  /** Load-shedding thresholds; the defaults suit a server process. */
  pressure?: PressureOptions
  /** Human-readable log lines (pino-pretty) instead of JSON: server.ts asks for them in development on a terminal. */
  prettyLogs?: boolean
  /** The mail sender's timing (tests shorten it). */
  mail?: MailerOptions
}

// What never reaches a log line: credentials in headers, cookies set, and any password in a body.
const LOG_REDACTIONS = [
  'req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]',
  '*.password', '*.currentPassword', '*.newPassword', '*.passwordHash', '*.access_token',
  // Not `*.code`: that would hide error codes (err.code) from every log line.
  '*.recoveryCode', '*.recoveryCodes', '*.mfa_token', '*.secret', '*.otpauthUrl', '*.totpSecret',
  // A mailed link's token, and addresses: neither belongs in a log line.
  '*.token', '*.email',
]

function newAjv (options: AjvOptions): Ajv {
  // verbose: each error carries its schema, so a message can list a union's choices.
  const ajv = new Ajv({ useDefaults: true, allErrors: false, removeAdditional: false, verbose: true, ...options })
  addFormats(ajv)
  return ajv
}

/**
 * Registers plugins, then routes, in an order that is itself a security property: headers first,
 * CORS before anything can refuse a preflight, CSRF before any body is read, rate limits before any
 * password is hashed. Never listens: that is server.ts's job.
 */
export async function buildApp ({ config, database, fastify = {}, pressure = {}, logStream, logLevel, prettyLogs = false, mail = {} }: BuildAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: logLevel ?? config.logLevel,
      redact: { paths: LOG_REDACTIONS, censor: '[redacted]' },
      // Fastify's own request fields, with the URL passed through loggableUrl (the OIDC callback's code and state).
      serializers: {
        req: (request: FastifyRequest) => ({
          method: request.method,
          url: loggableUrl(request.url),
          host: request.host,
          remoteAddress: request.ip,
          ...(request.socket?.remotePort === undefined ? {} : { remotePort: request.socket.remotePort }),
        }),
      },
      ...(logStream === undefined ? {} : { stream: logStream }),
      // Redaction happens before the transport sees a line, so the pretty output hides the same.
      ...(prettyLogs && logStream === undefined ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname' } } } : {}),
    },
    // X-Forwarded-For is believed only from the proxies named in TRUST_PROXY.
    trustProxy: config.trustProxy.length > 0 ? [...config.trustProxy] : false,
    bodyLimit: 1024 * 1024,
    // While draining after SIGTERM, a request that arrives on an open keep-alive connection is served
    // (the connection then closes) rather than refused with a 503: a rolling restart fails nothing.
    return503OnClosing: false,
    // With tracing on, plugins/tracing.ts writes these two lines itself, once the trace id is known.
    logController: new LogController({ disableRequestLogging: config.otelEndpoint !== undefined }),
    // Fastify gives each plugin 10 s to start; opening the database can take longer on a first start
    // (a new embedded database initialises for 10-20 s on a loaded 2-core machine, and a migration
    // waits for another instance's lock). Its own connect timeouts still bound a database that is gone.
    pluginTimeout: 120_000,
    // 400 messages that name the field and say the rule in words.
    schemaErrorFormatter: validationError,
    // Fastify's default Ajv strips unknown fields silently; ours refuses them (`role` can never be
    // mass-assigned) and never coerces bodies ("1" is not a boolean). Query strings and params
    // arrive as text, so they are coerced.
    ...fastify,
  }).withTypeProvider<TypeBoxTypeProvider>()

  const bodyAjv = newAjv({ coerceTypes: false })
  const urlAjv = newAjv({ coerceTypes: 'array' })
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : urlAjv).compile(schema))

  await app.register(configPlugin, { config })
  // First, so that the request span covers every hook after it, and every refusal is counted.
  await app.register(tracingPlugin)
  await app.register(metricsPlugin)
  await app.register(errorsPlugin)
  await app.register(securityPlugin)
  await app.register(corsPlugin)
  await app.register(pressurePlugin, pressure)
  await app.register(csrfPlugin)
  // Before the database: a provider that production needs and cannot load stops the start at once.
  await app.register(oidcPlugin)
  await app.register(dbPlugin, database === undefined ? {} : { database })
  await app.register(dbBreakerPlugin)
  await app.register(purgePlugin)
  await app.register(rateLimitPlugin)
  await app.register(auditPlugin)
  await app.register(authPlugin)
  await app.register(accountLimitPlugin)
  await app.register(docsPlugin)
  await app.register(mailerPlugin, mail)

  await app.register(healthRoutes, { prefix: '/api/health' })
  await app.register(authRoutes, { prefix: '/api/auth' })
  await app.register(mfaRoutes, { prefix: '/api/auth' })
  await app.register(oidcRoutes, { prefix: '/api/auth' })
  // Without a way to send mail (production without SMTP_URL) the e-mail routes do not exist.
  if (config.mailEnabled) await app.register(emailRoutes, { prefix: '/api/auth' })
  await app.register(passkeysRoutes, { prefix: '/api/auth' })
  await app.register(tasksRoutes, { prefix: '/api/tasks' })
  await app.register(usersRoutes, { prefix: '/api/users' })
  await app.register(auditRoutes, { prefix: '/api/audit' })
  await app.register(metricsRoutes, { prefix: '/api/metrics' })

  return app
}
