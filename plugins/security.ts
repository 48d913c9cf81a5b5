import helmet from '@fastify/helmet'
import fp from 'fastify-plugin'

/**
 * Security headers on every answer (errors, 404s and preflights too, since Helmet hooks onRequest
 * and runs first), and JSON as the only body type the API accepts.
 */
export default fp(async (app) => {
  await app.register(helmet, {
    global: true,
    // A JSON API renders nothing: its answers may load nothing and be framed by no one. The docs
    // page sets its own, looser policy on its own routes.
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'none'"],
      },
    },
    // Two years with subdomains: what hstspreload.org asks for.
    strictTransportSecurity: { maxAge: 63_072_000, includeSubDomains: true },
    referrerPolicy: { policy: 'no-referrer' },
  })

  // API answers carry tokens, users and sessions: no browser, proxy or CDN may keep one (`/token`'s
  // answer is a credential). Set before anything can answer, so errors and preflights carry it too.
  // The docs' static files (scripts, styles) set their own caching and may be kept.
  app.addHook('onRequest', async (request, reply) => {
    if (request.url.startsWith('/api') && !request.url.startsWith('/api/docs/static/')) reply.header('cache-control', 'no-store')
  })

  // Fastify also parses text/plain by default. A text/plain POST is a "simple" request that a
  // browser sends cross-site without a preflight; refusing it (415) closes that door for good.
  app.removeContentTypeParser('text/plain')
}, { name: 'security' })
