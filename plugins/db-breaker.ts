import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { withDeadline } from '../src/deadline.js'
import { DatabaseUnavailable, isDatabaseUnavailable, sqlState } from '../src/errors.js'

// While open, the database is probed this often; the first answer closes the breaker, so the API
// is back within about this long of the database.
const PROBE_INTERVAL_MS = 250
const STATEMENT_TIMEOUT = '57014'
// A probe that hangs (a link postgres.js cannot watch, e.g. TLS) must not stop the probing.
const PROBE_TIMEOUT_MS = 1500

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `false`: the route never touches the database, so it keeps answering while the database is away. */
    needsDatabase?: boolean
  }
}

/** Unmatched URLs (404s) touch no database either. */
function needsDatabase (request: FastifyRequest): boolean {
  return request.routeOptions.url !== undefined && request.routeOptions.config.needsDatabase !== false
}

/**
 * A circuit breaker in front of the pool. The first request that finds the database unreachable
 * (connection refused or lost, a connect or silence deadline passed) opens it; from then on requests
 * that need the database are answered 503 DATABASE_UNAVAILABLE with Retry-After at once, instead of
 * each joining postgres.js's queue and waiting out its own deadlines behind the others (a queue with
 * no bound on its wait). A probe pings the database every PROBE_INTERVAL_MS and closes the breaker
 * on the first answer. Runs after validation (bad input is still a 400) and before authentication.
 */
export default fp(async (app) => {
  let isOpen = false
  let closing = false
  let probeTimer: NodeJS.Timeout | undefined

  function scheduleProbe () {
    if (closing) return
    probeTimer = setTimeout(probe, PROBE_INTERVAL_MS)
    probeTimer.unref()
  }

  async function probe () {
    try {
      await withDeadline(app.database.ping(), PROBE_TIMEOUT_MS, () => new DatabaseUnavailable())
      isOpen = false
      app.metrics.setBreakerOpen(false)
      app.log.info('database reachable again: requests go through')
    } catch {
      scheduleProbe()
    }
  }

  function open (error: unknown) {
    if (isOpen) return
    isOpen = true
    app.metrics.setBreakerOpen(true)
    app.log.warn({ err: error }, 'database unreachable: answering 503 until it is back')
    scheduleProbe()
  }

  app.addHook('onError', async (_request, _reply, error) => {
    // A statement cut by statement_timeout was answered by a live server: one slow query is no outage.
    if (sqlState(error) === STATEMENT_TIMEOUT) return
    if (isDatabaseUnavailable(error) || (error as { code?: unknown }).code === 'DATABASE_UNAVAILABLE') open(error)
  })

  app.addHook('preHandler', async function refuseWhileBreakerOpen (request, reply) {
    if (!isOpen || !needsDatabase(request)) return
    reply.header('retry-after', '1')
    throw new DatabaseUnavailable()
  })

  app.addHook('onClose', async () => {
    closing = true
    clearTimeout(probeTimer)
  })
}, { name: 'db-breaker', dependencies: ['db', 'metrics'] })
