import fp from 'fastify-plugin'
import { CsrfOrigin } from '../src/errors.js'

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

function originOf (url: string): string | undefined {
  try {
    return new URL(url).origin
  } catch {
    return undefined
  }
}

/**
 * SameSite=None cookies ride along on cross-site requests, so every state-changing request proves
 * where it comes from: its Origin must be allowed (or the API's own, PUBLIC_ORIGIN). Browsers without Origin are
 * judged by Sec-Fetch-Site, then Referer. A caller that sends none of them is not a browser, and a
 * non-browser cannot be made to carry someone's cookies. Runs in onRequest: nothing is parsed, hashed
 * or written before it.
 */
export default fp(async (app) => {
  // The API's own origin comes from PUBLIC_ORIGIN, never from the Host header: a DNS-rebinding page
  // (evil.example resolving to 127.0.0.1) sends `Host: evil.example` and `Origin: http://evil.example`,
  // which would match each other.
  const allowed = new Set([...app.config.corsOrigins, ...app.config.publicOrigins])
  const isAllowed = (origin: string) => allowed.has(origin)

  app.addHook('onRequest', async (request) => {
    if (!STATE_CHANGING.has(request.method)) return
    const { origin, referer } = request.headers
    const fetchSite = request.headers['sec-fetch-site']
    let refused: string | undefined
    if (origin !== undefined) {
      if (!isAllowed(origin)) refused = `origin ${origin}`
    } else if (fetchSite === 'cross-site' || fetchSite === 'same-site') {
      refused = `sec-fetch-site ${fetchSite}`
    } else if (referer !== undefined) {
      const refererOrigin = originOf(referer)
      if (refererOrigin === undefined || !isAllowed(refererOrigin)) refused = 'referer'
    }
    if (refused !== undefined) {
      request.log.warn({ reason: refused }, 'cross-site request refused')
      throw new CsrfOrigin()
    }
  })
}, { name: 'csrf', dependencies: ['config'] })
