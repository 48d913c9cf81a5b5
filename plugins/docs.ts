import type { RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { failures } from '../src/schemas.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: a route that load shedding never refuses (liveness), so it documents no 503. */
    shed?: boolean
  }
}

/**
 * The OpenAPI document, generated from the routes' own schemas (so it cannot drift from what is
 * validated), at /api/docs/json, with Swagger UI at /api/docs. Registered before the routes, as
 * @fastify/swagger collects them as they are added. DOCS=false turns both off.
 */
// The failures every route of a kind shares, added where the route did not describe them itself.
function genericFailures (route: RouteOptions): Record<number, string> {
  const schema = route.schema ?? {}
  const methods = [route.method].flat()
  const described: Record<number, string> = {}
  if (schema.body !== undefined || schema.querystring !== undefined || schema.params !== undefined) {
    described[400] = '`FST_ERR_VALIDATION`: a field breaks its rule (the message names the field and the rule)'
  }
  if (schema.security !== undefined) {
    described[401] = '`TOKEN_MISSING`, `TOKEN_INVALID`, `TOKEN_EXPIRED` or `SESSION_REVOKED`: sign in (or refresh) first'
  }
  if (methods.some((method) => method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS')) {
    described[403] = '`CSRF_ORIGIN`: a state change from an origin that is neither allowed (CORS_ORIGINS) nor the API\'s own'
  }
  if (schema.body !== undefined) {
    described[413] = 'the body is over 1 MiB'
    described[415] = 'the body is not `application/json`'
  }
  const config = route.config as { rateLimit?: unknown, shed?: boolean } | undefined
  if (config?.rateLimit !== false) described[429] = '`RATE_LIMITED`: too many requests; wait for `Retry-After` seconds'
  if (config?.shed !== false) described[503] = '`DATABASE_UNAVAILABLE` or `OVERLOADED`: try again after `Retry-After` seconds'
  return described
}

export default fp(async (app) => {
  // Every route's failures in the OpenAPI document (and so in Swagger UI), next to its success.
  // Added whether or not the docs are served, so that the answers never differ with DOCS.
  app.addHook('onRoute', (route) => {
    if (route.schema === undefined || (route.schema as { hide?: boolean }).hide === true) return
    const response = (route.schema.response ?? {}) as Record<string, unknown>
    const missing = Object.entries(failures(genericFailures(route))).filter(([status]) => response[status] === undefined)
    if (missing.length > 0) route.schema.response = { ...Object.fromEntries(missing), ...response }
  })

  if (!app.config.docs) return
  // Loaded only when served: production (DOCS=false by default) never holds Swagger UI in memory.
  const [{ default: swagger }, { default: swaggerUi }] = await Promise.all([import('@fastify/swagger'), import('@fastify/swagger-ui')])
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'cookie-auth-api',
        description: 'Sign-in with HttpOnly cookies (or a Bearer token), per-user tasks, admin user management and an audit log.',
        version: '0.1.0',
      },
      tags: [
        { name: 'auth', description: 'Accounts, sessions and tokens' },
        { name: 'mfa', description: 'Second factors: TOTP, recovery codes, the second step of a sign-in' },
        { name: 'tasks', description: "The caller's own tasks" },
        { name: 'users', description: 'User management (admin)' },
        { name: 'audit', description: 'The audit log (admin)' },
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'metrics', description: 'Prometheus metrics (when METRICS_TOKEN is set)' },
      ],
      components: {
        securitySchemes: {
          cookieAuth: { type: 'apiKey', in: 'cookie', name: app.config.accessCookieName, description: 'Set by POST /api/auth/login' },
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'From POST /api/auth/token' },
          metricsToken: { type: 'http', scheme: 'bearer', description: 'The METRICS_TOKEN the server was started with' },
          refreshCookie: { type: 'apiKey', in: 'cookie', name: app.config.refreshCookieName, description: 'Set by POST /api/auth/login; read by POST /api/auth/refresh' },
        },
      },
    },
  })
  // The docs' routes belong to Swagger UI; in their own context they are marked as not needing the
  // database, so the documentation stays up during a database outage.
  await app.register(async (docs) => {
    docs.addHook('onRoute', (route) => { route.config = { ...route.config, needsDatabase: false } })
    await docs.register(swaggerUi, {
      routePrefix: '/api/docs',
      // Swagger UI runs scripts and styles of its own: this policy replaces the API's deny-all one on
      // the docs routes only.
      staticCSP: true,
      // ...minus upgrade-insecure-requests, which would break the page on plain-HTTP development hosts.
      transformStaticCSP: (header) => header.replace(/\s*upgrade-insecure-requests;?/, ''),
      uiConfig: { docExpansion: 'list', deepLinking: true },
    })
  })
}, { name: 'docs', dependencies: ['config'] })
