import rateLimit, { type CreateRateLimitOptions } from '@fastify/rate-limit'
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { RateLimited } from '../src/errors.js'

/**
 * Per-account count of wrong second-factor codes. Only failures count; while the account is over
 * its limit every code is refused with a 429, the right one too (no oracle). Shared through Redis
 * when REDIS_URL is set (a botnet gains nothing from spreading its guesses over instances), else
 * in this process; a Redis outage falls back to memory, so the limit never switches off.
 */
export interface SecondFactorLimit {
  /** Throws 429 RATE_LIMITED (with Retry-After) while the account is over its limit. */
  assertAllowed (userId: string, reply: FastifyReply): Promise<void>
  recordFailure (userId: string): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    secondFactorLimit: SecondFactorLimit
  }
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
  // A guesser holding the password gets 10 tries per quarter hour at a 1-in-333,333 chance each
  // (3 valid codes in a million): about 0.3 % a day, while a person who mistypes is never stopped.
  secondFactorPerAccount: { max: 10, timeWindow: 15 * 60_000 },
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
    errorResponseBuilder: (_request, context) => new RateLimited(context.after),
  })

  // Both run after validation and before the handler, so a password is never hashed for a
  // request over its limit. The per-username count also slows a distributed guess at one account.
  // createRateLimit, not rateLimit: the hook form runs at most one limiter per request, and the
  // global one has already run by then.
  function limiter (options: CreateRateLimitOptions): preHandlerAsyncHookHandler {
    const check = app.createRateLimit(options)
    return async function credentialLimit (request, reply) {
      const result = await check(request)
      if (result.isAllowed || !result.isExceeded) return
      reply.header('retry-after', String(result.ttlInSeconds))
      throw new RateLimited(`${result.ttlInSeconds} seconds`)
    }
  }
  const perIp = limiter({
    ...CREDENTIAL_LIMITS.perIp,
    keyGenerator: (request) => `credentials-ip:${request.ip}`,
    allowList: (request) => allowList.has(request.ip),
  })
  const perUsername = limiter({
    ...CREDENTIAL_LIMITS.perUsername,
    keyGenerator: (request) => `credentials-user:${usernameOf(request) ?? ''}`,
    allowList: (request) => allowList.has(request.ip) || usernameOf(request) === undefined,
  })

  app.decorate('secondFactorLimit', accountFailureCounter(redis, 'cookie-auth-api:mfa-failures:', CREDENTIAL_LIMITS.secondFactorPerAccount))

  app.addHook('onRoute', (routeOptions) => {
    if (routeOptions.config?.rateLimitKind !== 'credentials') return
    const existing = routeOptions.preHandler
    routeOptions.preHandler = [perIp, perUsername, ...(existing === undefined ? [] : Array.isArray(existing) ? existing : [existing])]
  })
}, { name: 'rate-limit', dependencies: ['config'] })

function accountFailureCounter (redis: Redis | undefined, prefix: string, limit: { max: number, timeWindow: number }): SecondFactorLimit {
  const memory = new Map<string, { count: number, resetAt: number }>()

  function fromMemory (key: string) {
    const entry = memory.get(key)
    if (entry !== undefined && entry.resetAt <= Date.now()) memory.delete(key)
    return memory.get(key)
  }

  async function current (key: string): Promise<{ count: number, msLeft: number }> {
    if (redis !== undefined && redis.status === 'ready') {
      try {
        const [count, msLeft] = await Promise.all([redis.get(key), redis.pttl(key)])
        return { count: Number(count ?? 0), msLeft }
      } catch { /* fall through to memory */ }
    }
    const entry = fromMemory(key)
    return { count: entry?.count ?? 0, msLeft: entry === undefined ? 0 : entry.resetAt - Date.now() }
  }

  return {
    async assertAllowed (userId, reply) {
      const { count, msLeft } = await current(prefix + userId)
      if (count < limit.max) return
      const seconds = Math.max(1, Math.ceil(msLeft / 1000))
      reply.header('retry-after', String(seconds))
      throw new RateLimited(`${seconds} seconds`)
    },
    async recordFailure (userId) {
      const key = prefix + userId
      if (redis !== undefined && redis.status === 'ready') {
        try {
          const count = await redis.incr(key)
          // The window starts at the first failure; later failures do not extend it.
          if (count === 1) await redis.pexpire(key, limit.timeWindow)
          return
        } catch { /* fall through to memory */ }
      }
      const entry = fromMemory(key)
      if (entry === undefined) {
        // Only a right password or a signed-in user gets this far, but keep the map bounded anyway.
        if (memory.size >= 10_000) for (const [stale, { resetAt }] of memory) if (resetAt <= Date.now()) memory.delete(stale)
        memory.set(key, { count: 1, resetAt: Date.now() + limit.timeWindow })
      } else {
        entry.count += 1
      }
    },
  }
}
