import { getHeapStatistics } from 'node:v8'
import underPressure, { TYPE_EVENT_LOOP_DELAY } from '@fastify/under-pressure'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Overloaded } from '../src/errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `false`: answered even while the process is overloaded (liveness). Set by the route. */
    shed?: boolean
  }
}

export interface PressureOptions {
  /** Mean event-loop delay (ms) over one sample beyond which requests are shed. */
  maxEventLoopDelay?: number
  /** V8 heap in use beyond which requests are shed. */
  maxHeapUsedBytes?: number
  /** How often the process is measured (ms). */
  sampleInterval?: number
}

// A mean delay of a second per turn of the event loop means every request already waits that long
// for nothing; past it, queueing more work only makes every answer later. Measured as a mean over
// each sample, so one slow tick does not trip it, a sustained backlog does. Set high on purpose: a
// starved process on a busy host (or the embedded database, which runs on this loop) also shows as
// delay, and a lower bar sheds requests a slower answer would have served.
const MAX_EVENT_LOOP_DELAY_MS = 1000
// 85 % of the heap V8 may grow to: beyond it the collector runs nearly non-stop, and the next step is
// an out-of-memory crash that would drop every request in flight.
const MAX_HEAP_SHARE = 0.85
const SAMPLE_INTERVAL_MS = 500
// Seconds a client should wait before retrying: a few samples, time for the backlog to drain.
export const OVERLOAD_RETRY_AFTER_S = 2

/**
 * Load shedding: while the process is saturated (event-loop delay or heap), requests get 503
 * OVERLOADED with Retry-After at once, before any body is parsed, hashed or sent to the database,
 * instead of joining a queue whose latency grows without bound. Liveness (`/api/health`) is exempt:
 * an overloaded process is alive, and restarting it would only drop its work. Readiness is not: a
 * load balancer should send traffic elsewhere for a while. A route opts out with `config: { shed: false }`.
 */
export default fp<PressureOptions>(async (app, options) => {
  const isExempt = (request: FastifyRequest) => request.routeOptions.config.shed === false
  const sampleInterval = options.sampleInterval ?? SAMPLE_INTERVAL_MS
  // Starting blocks the loop on purpose (opening PGlite takes seconds of synchronous work): the
  // samples that cover the start say nothing about load, so the first two after ready are ignored.
  let judgedFrom = Infinity
  app.addHook('onReady', async () => { judgedFrom = performance.now() + 2 * sampleInterval })
  await app.register(underPressure, {
    maxEventLoopDelay: options.maxEventLoopDelay ?? MAX_EVENT_LOOP_DELAY_MS,
    maxHeapUsedBytes: options.maxHeapUsedBytes ?? Math.floor(getHeapStatistics().heap_size_limit * MAX_HEAP_SHARE),
    sampleInterval,
    pressureHandler: async (request, reply, type, value) => {
      if (isExempt(request)) return
      if (type === TYPE_EVENT_LOOP_DELAY && performance.now() < judgedFrom) return
      request.log.warn({ type, value }, 'overloaded: request shed')
      reply.header('retry-after', String(OVERLOAD_RETRY_AFTER_S))
      throw new Overloaded()
    },
  })
}, { name: 'pressure', dependencies: ['errors'] })
