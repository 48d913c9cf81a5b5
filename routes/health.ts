import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { DatabaseUnavailable } from '../src/errors.js'
import { failures } from '../src/schemas.js'

const Status = Type.Object({ status: Type.Literal('ok') })

// Readiness must answer fast even when the database hangs: a probe that waits is a probe that fails.
const READY_TIMEOUT_MS = 1500

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/', {
    // Never shed nor rate limited: a probe that gets a 503 here would restart a healthy process.
    config: { rateLimit: false, shed: false },
    schema: { tags: ['health'], summary: 'Liveness: the process is up', response: { 200: Status } },
  }, async () => ({ status: 'ok' as const }))

  app.get('/ready', {
    config: { rateLimit: false },
    schema: {
      tags: ['health'],
      summary: 'Readiness: the database answers',
      response: { 200: Status, ...failures({ 503: '`DATABASE_UNAVAILABLE`: the database did not answer within 1.5 s (or `OVERLOADED`)' }) },
    },
  }, async () => {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new DatabaseUnavailable()), READY_TIMEOUT_MS)
    })
    try {
      await Promise.race([app.database.ping(), timeout])
    } catch {
      throw new DatabaseUnavailable()
    } finally {
      clearTimeout(timer)
    }
    return { status: 'ok' as const }
  })
}

export default healthRoutes
