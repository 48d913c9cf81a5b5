import cors from '@fastify/cors'
import fp from 'fastify-plugin'

/**
 * Credentialed CORS for exactly the origins in CORS_ORIGINS. A function over a Set, not a string
 * or a regex: a string option is echoed to every caller, and patterns let look-alike origins
 * (https://app.example.com.evil.test) slip through. `null` (sandboxed frames, file://) is never allowed.
 */
export default fp(async (app) => {
  const allowed = new Set(app.config.corsOrigins)
  await app.register(cors, {
    origin: (origin, callback) => { callback(null, origin !== undefined && allowed.has(origin)) },
    credentials: true,
    methods: ['GET', 'POST', 'PATCH', 'DELETE'],
    allowedHeaders: ['Content-Type', 'Authorization', 'X-Origin', 'X-Requested-With', 'Accept'],
    // A cross-origin frontend can read these on a 429 or 503 and say how long to wait.
    exposedHeaders: ['Retry-After'],
    maxAge: 600,
    // Answer every preflight here, before routing, auth or rate limits can refuse it.
    hook: 'onRequest',
  })
  // Caches must key every answer on Origin, even those to callers that sent none, or a cached
  // answer without CORS headers could be served to an allowed origin (or the reverse).
  app.addHook('onSend', async (_request, reply) => {
    const vary = reply.getHeader('vary')
    if (vary === undefined) reply.header('vary', 'Origin')
    else if (!String(vary).split(',').some((field) => field.trim().toLowerCase() === 'origin')) reply.header('vary', `${String(vary)}, Origin`)
  })
}, { name: 'cors', dependencies: ['config'] })
