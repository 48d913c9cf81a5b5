import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { withDeadline } from '../src/deadline.js'
import { DatabaseUnavailable } from '../src/errors.js'
import { failures } from '../src/schemas.js'

const Status = Type.Object({ status: Type.Literal('ok') })

// Readiness must answer fast even when the database hangs: a probe that waits is a probe that fails.
const READY_TIMEOUT_MS = 1500

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/', {
    // Liveness answers whatever else is wrong: never shed, rate limited or behind the database
    // breaker; a probe that gets a 503 here would restart a healthy process.
    config: { rateLimit: false, shed: false, needsDatabase: false },
    schema: { tags: ['health'], summary: 'Liveness: the process is up', response: { 200: Status } },
  }, async (_request, reply) => {
    // Any page may read "ok" (the rest of the API is same-origin only): the example frontend probes
    // it to tell "the API refused my origin" (CORS) from "the API is unreachable".
    reply.header('cross-origin-resource-policy', 'cross-origin')
    return { status: 'ok' as const }
  })

  app.get('/ready', {
    config: { rateLimit: false },
    schema: {
      tags: ['health'],
      summary: 'Readiness: the database answers',
      response: { 200: Status, ...failures({ 503: '`DATABASE_UNAVAILABLE`: the database did not answer within 1.5 s (or `OVERLOADED`)' }) },
    },
  }, async () => {
    try {
      await withDeadline(app.database.ping(), READY_TIMEOUT_MS, () => new DatabaseUnavailable())
    } catch {
      throw new DatabaseUnavailable()
    }
    return { status: 'ok' as const }
  })
}

export default healthRoutes
