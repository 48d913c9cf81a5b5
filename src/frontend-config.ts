/**
 * Where the example frontend finds the API, said once: the page's `config.js` (`API_BASE`) and the
 * `connect-src` of its Content-Security-Policy are both generated from the same `ApiLocation`, by the
 * development server from its running configuration, and by `npm run frontend -- build` for a
 * deployment. The files committed in deploy/frontend/ are the generated same-origin pair.
 */
export type ApiLocation =
  /** One origin for every page ('' = the page's own origin, the API under /api behind the same Nginx). */
  | { readonly origin: string }
  /** Development: the API by the page's host name, so localhost calls 127.0.0.1 and the other way round. */
  | { readonly byPageHost: Readonly<Record<string, string>> }

export const SAME_ORIGIN: ApiLocation = { origin: '' }

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '0.0.0.0', '::', '::1'])

/**
 * The development layout: the page on one loopback name calls the API on the other, so that every
 * call is cross-site (CORS, SameSite=None, Partitioned), as with a frontend on its own domain.
 */
export function developmentApi (apiHost: string, apiPort: number): ApiLocation {
  if (LOOPBACK.has(apiHost)) {
    return { byPageHost: { localhost: `http://127.0.0.1:${apiPort}`, '127.0.0.1': `http://localhost:${apiPort}` } }
  }
  const host = apiHost.includes(':') ? `[${apiHost}]` : apiHost
  return { byPageHost: { [apiHost]: `http://${host}:${apiPort}` } }
}

/** An API origin given by a person (`--api`): exactly scheme://host[:port], as a browser sends it. */
export function parseApiOrigin (value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new Error(`"${value}" is not an origin like https://api.example.com`)
  }
  if (url.origin !== value || !/^https?:$/.test(url.protocol)) throw new Error(`"${value}" is not an origin like https://api.example.com (no path, no trailing slash)`)
  return value
}

function apiOrigins (api: ApiLocation): string[] {
  const origins = 'origin' in api ? [api.origin] : Object.values(api.byPageHost)
  return [...new Set(origins.filter((origin) => origin !== ''))]
}

/**
 * The page's policy: only its own files run or style it; fetches go to its own origin and the API.
 * (frame-ancestors cannot be set from a meta tag: Nginx sends it as a header.)
 */
export function pageCsp (api: ApiLocation): string {
  const connect = ["'self'", ...apiOrigins(api)].join(' ')
  return `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src ${connect}; base-uri 'none'; form-action 'none'`
}

/** The page's config.js. */
export function configScript (api: ApiLocation): string {
  const header = '// Generated from the server\'s configuration (src/frontend-config.ts): where the API is.\n' +
    '// The Content-Security-Policy in index.html allows fetches to the same origins.\n'
  if ('origin' in api) return `${header}export const API_BASE = ${JSON.stringify(api.origin)}\n`
  return `${header}/* global location */\nconst BY_PAGE_HOST = ${JSON.stringify(api.byPageHost)}\n` +
    'export const API_BASE = BY_PAGE_HOST[location.hostname] ?? \'\'\n'
}

const CSP_META = /(<meta http-equiv="Content-Security-Policy" content=")[^"]*(">)/

/** index.html with its CSP meta tag's policy replaced by `pageCsp(api)`. */
export function indexHtml (template: string, api: ApiLocation): string {
  if (!CSP_META.test(template)) throw new Error('index.html has no Content-Security-Policy meta tag to fill in')
  return template.replace(CSP_META, (_match, before: string, after: string) => `${before}${pageCsp(api).replaceAll('"', '&quot;')}${after}`)
}
