import fp from 'fastify-plugin'
import { createMetrics, type Metrics } from '../src/metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Every series the API exposes (src/metrics.ts); present whether or not METRICS_TOKEN is set. */
    metrics: Metrics
  }
}

// A request no route matched: one label value for all of them, never the raw URL.
const UNMATCHED_ROUTE = 'unmatched'

/**
 * The metrics registry, shared by every plugin and route. Without METRICS_TOKEN nobody can read it, so
 * neither the per-request recording nor Node's process metrics run; the counters features bump stay
 * in memory, unread (an increment costs less than the branch that would skip it).
 */
export default fp(async (app) => {
  const isEnabled = app.config.metricsToken !== undefined
  const metrics = createMetrics({ withProcessMetrics: isEnabled })
  app.decorate('metrics', metrics)
  if (!isEnabled) return
  // onResponse runs for every answer, refusals by the rate limiter, the load shedder and the 404
  // handler included; the route is the pattern the request matched.
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeRequest(request.method, request.routeOptions.url ?? UNMATCHED_ROUTE, reply.statusCode, reply.elapsedTime / 1000)
    done()
  })
}, { name: 'metrics', dependencies: ['config'] })
