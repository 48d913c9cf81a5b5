import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { sameSecret } from '../src/constant-time.js'
import { MetricsTokenInvalid } from '../src/errors.js'

/**
 * GET /api/metrics: the Prometheus text format, for a scraper holding METRICS_TOKEN. Without the
 * variable the route does not exist (404): nothing about the process is readable by default.
 */
const metricsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const token = app.config.metricsToken
  if (token === undefined) return
  const isAuthorized = (header: string | undefined) => {
    const presented = header !== undefined && /^bearer /i.test(header) ? header.slice(7).trim() : ''
    return sameSecret(presented, token) && presented !== ''
  }

  app.get('/', {
    // A scrape is how an operator sees an overload or an outage: never shed, never behind the breaker.
    config: { shed: false, needsDatabase: false },
    schema: {
      tags: ['metrics'],
      summary: 'Prometheus metrics (Authorization: Bearer METRICS_TOKEN); 404 when METRICS_TOKEN is not set',
      security: [{ metricsToken: [] }],
      response: { 200: Type.String({ description: 'Prometheus text exposition format 0.0.4' }) },
    },
  }, async (request, reply) => {
    if (!isAuthorized(request.headers.authorization)) {
      reply.header('www-authenticate', 'Bearer realm="metrics"')
      throw new MetricsTokenInvalid()
    }
    const { registry } = app.metrics
    const body = await registry.metrics()
    return reply.type(registry.contentType).send(body)
  })
}

export default metricsRoutes
