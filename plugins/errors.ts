import type { FastifyError } from 'fastify'
import fp from 'fastify-plugin'
import { STATUS_CODES } from 'node:http'
import { DatabaseUnavailable, InternalError, isDatabaseUnavailable, sqlState } from '../src/errors.js'

// Bad input that only Postgres noticed: invalid text representation, NUL in text, out-of-range
// numbers, value too long. The caller sent it, so it is a 400, whatever slipped past the schemas.
const BAD_INPUT_STATES = new Set(['22P02', '22021', '22003', '22001', '22007', '22008'])

interface ErrorBody { statusCode: number, error: string, message: string, code?: string }

function body (statusCode: number, message: string, code?: string): ErrorBody {
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message, ...(code === undefined ? {} : { code }) }
}

/**
 * One place decides what a failure looks like from outside. 4xx keep their message and code; 5xx
 * get a generic message, because the default handler would echo the thrown message — SQL text and
 * parameters included, as Drizzle puts them there. A database that is not answering is a 503.
 */
export default fp(async (app) => {
  app.setErrorHandler(function handleError (error: FastifyError, request, reply) {
    let statusCode = error.statusCode ?? 500
    let payload: ErrorBody
    if (error.validation) {
      statusCode = 400
      payload = body(400, error.message, 'FST_ERR_VALIDATION')
    } else if (statusCode >= 400 && statusCode < 500) {
      payload = body(statusCode, error.message, error.code)
    } else if (isDatabaseUnavailable(error)) {
      statusCode = 503
      request.log.warn({ err: error }, 'database unavailable')
      const unavailable = new DatabaseUnavailable()
      payload = body(503, unavailable.message, unavailable.code)
      reply.header('retry-after', '1')
    } else if (BAD_INPUT_STATES.has(sqlState(error) ?? '')) {
      statusCode = 400
      payload = body(400, 'The request holds a value the database cannot store', 'INVALID_VALUE')
    } else if (statusCode === 503) {
      // Deliberate 503s (load shedding, readiness) say what they are; nothing internal is in them.
      payload = body(503, error.message, error.code)
    } else {
      statusCode = 500
      request.log.error({ err: error }, 'unhandled error')
      const internal = new InternalError()
      payload = body(500, internal.message, internal.code)
    }
    return reply.code(statusCode).type('application/json; charset=utf-8').send(payload)
  })

  app.setNotFoundHandler(function notFound (request, reply) {
    return reply.code(404).send(body(404, `Route ${request.method} ${request.url.split('?')[0] ?? ''} not found`, 'ROUTE_NOT_FOUND'))
  })
}, { name: 'errors' })
