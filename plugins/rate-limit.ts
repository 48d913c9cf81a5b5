import rateLimit, { type CreateRateLimitOptions } from '@fastify/rate-limit'
import type { FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { RateLimited } from '../src/errors.js'
import type { RateLimitName } from '../src/metrics.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `credentials`: the route checks a password, so it gets the strict per-IP and per-username limits. */
    rateLimitKind?: 'credentials'
  }
}

// A person mistyping a password a few times never meets these; a guessing script does at once.
export const CREDENTIAL_LIMITS = {
  perIp: { max: 30, timeWindow: 60_000 },
  perUsername: { max: 10, timeWindow: 60_000 },
  // Lenient: a busy frontend stays far below it; a flood from one address does not.
  global: { max: 1200, timeWindow: 60_000 },
} as const

function usernameOf (request: FastifyRequest): string | undefined {
  const body = request.body as { username?: unknown } | undefined
  return typeof body?.username === 'string' ? body.username.toLowerCase() : undefined
}

/**
 * Counts requests per client IP (the X-Forwarded-For address only when the connection comes from a
 * TRUST_PROXY address, which Fastify resolves into request.ip), in Redis when REDIS_URL is set so
 * that every instance sees the same counters, else in this process. A Redis outage lets requests
 * through rather than taking the API down with it.
 */
export default fp(async (app) => {
  const { config } = app
  const redis = config.redisUrl === undefined
    ? undefined
    : new Redis(config.redisUrl, { connectTimeout: 1000, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  if (redis !== undefined) {
    redis.on('error', (error) => app.log.warn({ err: error }, 'redis (rate-limit counters) unavailable'))
    app.addHook('onClose', async () => { redis.disconnect() })
  }
  const allowList = new Set(config.rateLimitAllowList)

  await app.register(rateLimit, {
    global: true,
    ...CREDENTIAL_LIMITS.global,
    hook: 'onRequest',
    keyGenerator: (request) => request.ip,
    allowList: (request) => allowList.has(request.ip),
    ...(redis === undefined ? {} : { redis, nameSpace: 'cookie-auth-api:rate-limit:' }),
    skipOnError: true,
    errorResponseBuilder: (_request, context) => {
      app.metrics.rateLimitRefusals.inc({ limit: 'global' })
      return new RateLimited(context.after)
    },
  })

  // Both run after validation and before the handler, so a password is never hashed for a
  // request over its limit. The per-username count also slows a distributed guess at one account.
  // createRateLimit, not rateLimit: the hook form runs at most one limiter per request, and the
  // global one has already run by then.
  function limiter (name: RateLimitName, options: CreateRateLimitOptions): preHandlerAsyncHookHandler {
    const check = app.createRateLimit(options)
    return async function credentialLimit (request, reply) {
      const result = await check(request)
      if (result.isAllowed || !result.isExceeded) return
      app.metrics.rateLimitRefusals.inc({ limit: name })
      reply.header('retry-after', String(result.ttlInSeconds))
      throw new RateLimited(`${result.ttlInSeconds} seconds`)
    }
  }
  const perIp = limiter('credentials_ip', {
    ...CREDENTIAL_LIMITS.perIp,
    keyGenerator: (request) => `credentials-ip:${request.ip}`,
    allowList: (request) => allowList.has(request.ip),
  })
  const perUsername = limiter('credentials_username', {
    ...CREDENTIAL_LIMITS.perUsername,
    keyGenerator: (request) => `credentials-user:${usernameOf(request) ?? ''}`,
    allowList: (request) => allowList.has(request.ip) || usernameOf(request) === undefined,
  })

  app.addHook('onRoute', (routeOptions) => {
    if (routeOptions.config?.rateLimitKind !== 'credentials') return
    const existing = routeOptions.preHandler
    routeOptions.preHandler = [perIp, perUsername, ...(existing === undefined ? [] : Array.isArray(existing) ? existing : [existing])]
  })
}, { name: 'rate-limit', dependencies: ['config', 'metrics'] })
