import rateLimit, { type CreateRateLimitOptions, type FastifyRateLimitStore } from '@fastify/rate-limit'
import type { FastifyBaseLogger, preHandlerAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import { RateLimited } from '../src/errors.js'
import type { RateLimitName } from '../src/metrics.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `credentials`: the route checks a secret, so it gets the strict per-address limit. */
    rateLimitKind?: 'credentials'
  }
  interface FastifyInstance {
    /** The counters every limit keeps: Redis when REDIS_URL is set and answering, else this process. */
    rateCounters: FailoverCounters
  }
}

// A person mistyping a password a few times never meets these; a guessing script does at once.
export const CREDENTIAL_LIMITS = {
  perIp: { max: 30, timeWindow: 60_000 },
  // Failures only (see plugins/account-limit.ts): ten wrong passwords, then a quarter of an hour.
  perAccount: { max: 10, timeWindow: 15 * 60_000 },
  // Lenient: a busy frontend stays far below it; a flood from one address does not.
  global: { max: 1200, timeWindow: 60_000 },
} as const

export interface CounterState {
  /** Hits in the current window, this one included when it was an increment. */
  readonly current: number
  /** Milliseconds until the window ends; 0 when no window is open. */
  readonly ttl: number
}

// INCR and the window's expiry in one step, so a crash between them cannot leave a counter that
// never expires.
const INCREMENT = `
local current = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {current, ttl}`

// Bounds the memory a flood of distinct keys can take; the oldest windows go first.
const MEMORY_KEYS = 100_000

/**
 * Windowed counters in Redis (shared by every instance) that fall back to this process's memory
 * whenever Redis does not answer: a limit is never switched off by an outage, only narrowed to one
 * instance for its duration. Without Redis, memory is all there is.
 */
export class FailoverCounters {
  private readonly memory = new Map<string, { current: number, resetAt: number }>()
  private isWarned = false

  constructor (private readonly redis: Redis | undefined, private readonly prefix: string, private readonly log: FastifyBaseLogger) {}

  async increment (key: string, windowMs: number): Promise<CounterState> {
    if (this.redis !== undefined) {
      try {
        const [current, ttl] = await this.redis.eval(INCREMENT, 1, this.prefix + key, windowMs) as [number, number]
        this.isWarned = false
        return { current, ttl }
      } catch (error) {
        this.warn(error)
      }
    }
    return this.incrementInMemory(key, windowMs)
  }

  async read (key: string): Promise<CounterState> {
    if (this.redis !== undefined) {
      try {
        const [value, ttl] = await this.redis.multi().get(this.prefix + key).pttl(this.prefix + key).exec()
          .then((replies) => (replies ?? []).map(([error, reply]) => { if (error) throw error; return reply })) as [string | null, number]
        this.isWarned = false
        // An outage's failures were counted in memory: a limit reached there still holds.
        const fromMemory = this.readFromMemory(key)
        const fromRedis = { current: value === null ? 0 : Number(value), ttl: Math.max(0, ttl) }
        return fromMemory.current > fromRedis.current ? fromMemory : fromRedis
      } catch (error) {
        this.warn(error)
      }
    }
    return this.readFromMemory(key)
  }

  private incrementInMemory (key: string, windowMs: number): CounterState {
    const now = Date.now()
    let entry = this.memory.get(key)
    if (entry === undefined || entry.resetAt <= now) {
      this.memory.delete(key)
      entry = { current: 0, resetAt: now + windowMs }
      if (this.memory.size >= MEMORY_KEYS) this.memory.delete(this.memory.keys().next().value!)
      this.memory.set(key, entry)
    }
    entry.current += 1
    return { current: entry.current, ttl: entry.resetAt - now }
  }

  private readFromMemory (key: string): CounterState {
    const entry = this.memory.get(key)
    const now = Date.now()
    if (entry === undefined || entry.resetAt <= now) return { current: 0, ttl: 0 }
    return { current: entry.current, ttl: entry.resetAt - now }
  }

  private warn (error: unknown) {
    if (this.isWarned) return
    this.isWarned = true
    this.log.warn({ err: error }, 'redis (rate-limit counters) unavailable: counting in this instance until it answers')
  }
}

/** @fastify/rate-limit's store interface over the failover counters (it never reports an error). */
function storeOver (counters: FailoverCounters) {
  return class FailoverStore implements FastifyRateLimitStore {
    private readonly prefix: string
    constructor (prefix: unknown) { this.prefix = typeof prefix === 'string' ? prefix : '' }

    incr (key: string, callback: (error: Error | null, result?: CounterState) => void, timeWindow: number) {
      counters.increment(this.prefix + key, timeWindow).then((state) => callback(null, state), callback)
    }

    read (key: string, callback: (error: Error | null, result?: CounterState) => void) {
      counters.read(this.prefix + key).then((state) => callback(null, state), callback)
    }

    // The plugin passes its merged options, with the route under `routeInfo` (empty for createRateLimit).
    child (routeOptions: object) {
      const { method = '', url = '' } = (routeOptions as { routeInfo?: { method?: unknown, url?: unknown } }).routeInfo ?? {}
      return new FailoverStore(`${this.prefix}${String(method)}${String(url)}-`)
    }
  }
}

/**
 * Counts requests per client IP (the X-Forwarded-For address only when the connection comes from a
 * TRUST_PROXY address, which Fastify resolves into request.ip), in Redis when REDIS_URL is set so
 * that every instance sees the same counters, else in this process. A Redis outage moves the
 * counting into this process: it never lets requests through unlimited.
 */
export default fp(async (app) => {
  const { config } = app
  // ioredis is loaded only with REDIS_URL: a single instance never holds its code in memory.
  const redis = config.redisUrl === undefined
    ? undefined
    // No offline queue and a command deadline: while Redis is away a command fails at once (and
    // the count moves to memory) rather than waiting for a reconnection.
    : new (await import('ioredis')).Redis(config.redisUrl, { connectTimeout: 1000, commandTimeout: 500, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  if (redis !== undefined) {
    redis.on('error', (error) => app.log.debug({ err: error }, 'redis (rate-limit counters) connection error'))
    app.addHook('onClose', async () => { redis.disconnect() })
  }
  const counters = new FailoverCounters(redis, 'cookie-auth-api:rate-limit:', app.log)
  app.decorate('rateCounters', counters)
  const allowList = new Set(config.rateLimitAllowList)

  await app.register(rateLimit, {
    global: true,
    ...CREDENTIAL_LIMITS.global,
    hook: 'onRequest',
    keyGenerator: (request) => request.ip,
    allowList: (request) => allowList.has(request.ip),
    store: storeOver(counters),
    skipOnError: false,
    errorResponseBuilder: (_request, context) => {
      app.metrics.rateLimitRefusals.inc({ limit: 'global' })
      return new RateLimited(context.after)
    },
  })

  // Runs after validation and before the handler, so a secret is never hashed for a request over
  // its limit. createRateLimit, not rateLimit: the hook form runs at most one limiter per request,
  // and the global one has already run by then.
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

  app.addHook('onRoute', (routeOptions) => {
    if (routeOptions.config?.rateLimitKind !== 'credentials') return
    const existing = routeOptions.preHandler
    routeOptions.preHandler = [perIp, ...(existing === undefined ? [] : Array.isArray(existing) ? existing : [existing])]
  })
}, { name: 'rate-limit', dependencies: ['config', 'metrics'] })
