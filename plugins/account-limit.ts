import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { RateLimited } from '../src/errors.js'
import { CREDENTIAL_LIMITS } from './rate-limit.js'

/**
 * Whose failures a counter holds: `user:<id>` for a known account, `name:<lowercased name>` for a
 * sign-in with a name no account has (limited the same way, so a 429 never tells which names exist).
 */
export type AccountKey = `user:${string}` | `name:${string}`

export const accountKeyOfUser = (userId: string): AccountKey => `user:${userId}`
export const accountKeyOfName = (username: string): AccountKey => `name:${username.toLowerCase()}`

export interface AccountLimit {
  /** True while this caller may not try this account's secret (its failures reached the limit). */
  isLimited (request: FastifyRequest, account: AccountKey): Promise<boolean>
  /**
   * Throws 429 RATE_LIMITED with Retry-After while limited. Call it before checking the secret, so
   * the right one gets the same 429 as a wrong one (no oracle) and nothing is hashed.
   */
  assertNotLimited (request: FastifyRequest, reply: FastifyReply, account: AccountKey): Promise<void>
  /** Counts one failure (wrong password, wrong current password, wrong second factor). */
  recordFailure (request: FastifyRequest, account: AccountKey): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The per-account limit on failures, which honours device cookies. */
    accountLimit: AccountLimit
  }
}

/**
 * Per account, only failures count: a registration or a successful sign-in never does. So that a
 * stranger spraying one name from many addresses cannot lock its owner out, a browser holding a
 * device cookie for that account (it signed in as that user before) counts against a limit of its
 * own, and the account's shared limit does not stop it (OWASP's "device cookies").
 */
export default fp(async (app) => {
  const { perAccount } = CREDENTIAL_LIMITS

  /** The counter this caller's attempts at this account go to. */
  function counterKey (request: FastifyRequest, account: AccountKey): string {
    const device = app.readDeviceCookie(request)
    if (device !== undefined && account === accountKeyOfUser(device.userId)) return `device-failures:${device.deviceId}`
    return `account-failures:${account}`
  }

  async function retryAfterSeconds (request: FastifyRequest, account: AccountKey): Promise<number> {
    const { current, ttl } = await app.rateCounters.read(counterKey(request, account))
    return current >= perAccount.max ? Math.max(1, Math.ceil(ttl / 1000)) : 0
  }

  app.decorate('accountLimit', {
    async isLimited (request, account) {
      return await retryAfterSeconds(request, account) > 0
    },
    async assertNotLimited (request, reply, account) {
      const seconds = await retryAfterSeconds(request, account)
      if (seconds === 0) return
      app.metrics.rateLimitRefusals.inc({ limit: 'credentials_account' })
      reply.header('retry-after', String(seconds))
      throw new RateLimited(`${seconds} seconds`)
    },
    async recordFailure (request, account) {
      await app.rateCounters.increment(counterKey(request, account), perAccount.timeWindow)
    },
  } satisfies AccountLimit)
}, { name: 'account-limit', dependencies: ['rate-limit', 'auth', 'metrics'] })
