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
    // The strict mode answers an OPTIONS without Origin or Access-Control-Request-Method with a
    // text/plain 400, outside the API's error shape; answered as a preflight instead, it gets allow
    // headers only for an allowed origin, as any other.
    strictPreflight: false,
    // Answer every preflight here, before routing, auth or rate limits can refuse it. With an origin
    // function the plugin also adds `Vary: Origin` to every answer, so no cache serves one origin's
    // answer to another.
    hook: 'onRequest',
  })

  // A refused preflight fails silently in the browser (the page sees only a network error), so the
  // log names the origin and the variable. Once a minute per origin: a flood of preflights from one
  // page must not flood the log.
  const lastLogged = new Map<string, number>()
  app.addHook('onRequest', async (request) => {
    const origin = request.headers.origin
    if (request.method !== 'OPTIONS' || origin === undefined || allowed.has(origin)) return
    if (request.headers['access-control-request-method'] === undefined) return
    const now = Date.now()
    if ((lastLogged.get(origin) ?? 0) > now - 60_000) return
    if (lastLogged.size >= 1000) lastLogged.clear()
    lastLogged.set(origin, now)
    request.log.info({ origin }, `CORS: refused a preflight from ${origin}, which is not in CORS_ORIGINS`)
  })
}, { name: 'cors', dependencies: ['config'] })
