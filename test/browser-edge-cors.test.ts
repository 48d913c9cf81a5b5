import t from 'tap'
import { buildTestApp, LogCapture } from './helpers/app.js'

const logs = new LogCapture()
const app = await buildTestApp(t, {}, { env: { CORS_ORIGINS: 'https://app.example.com,http://localhost:4100' }, logs })

const preflight = (origin: string, method = 'POST', headers = 'content-type') => app.inject({
  method: 'OPTIONS',
  url: '/api/tasks',
  headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
})

t.test('an allowed origin gets its own origin echoed, with credentials and Vary: Origin', async (t) => {
  const response = await app.inject({ url: '/api/health', headers: { origin: 'https://app.example.com' } })
  t.equal(response.headers['access-control-allow-origin'], 'https://app.example.com')
  t.equal(response.headers['access-control-allow-credentials'], 'true')
  t.match(response.headers.vary, /Origin/)
})

t.test('look-alike, null and unlisted origins get no CORS headers at all', async (t) => {
  const hostile = [
    'https://evil.example', 'https://app.example.com.evil.example', 'https://evilapp.example.com', 'https://app.example.co',
    'http://app.example.com', 'https://app.example.com:8443', 'null', 'https://APP.example.com', 'https://app.example.com/',
    'http://localhost:41000', 'http://localhost', 'http://127.0.0.1:4100',
  ]
  for (const origin of hostile) {
    const simple = await app.inject({ url: '/api/health', headers: { origin } })
    t.equal(simple.headers['access-control-allow-origin'], undefined, `${origin}: no allow-origin`)
    t.equal(simple.headers['access-control-allow-credentials'], undefined, `${origin}: no credentials`)
    t.match(simple.headers.vary, /Origin/)
    const pre = await preflight(origin)
    t.equal(pre.headers['access-control-allow-origin'], undefined, `${origin}: preflight refused`)
    t.equal(pre.headers['access-control-allow-methods'], undefined)
    t.equal(pre.headers['access-control-allow-headers'], undefined)
  }
})

t.test('a preflight from an allowed origin lists the contract methods and headers, cached 600 s', async (t) => {
  const response = await preflight('http://localhost:4100', 'PATCH', 'content-type,x-requested-with')
  t.equal(response.statusCode, 204)
  t.equal(response.headers['access-control-allow-origin'], 'http://localhost:4100')
  t.equal(response.headers['access-control-allow-credentials'], 'true')
  t.equal(response.headers['access-control-allow-methods'], 'GET, POST, PATCH, DELETE')
  t.equal(response.headers['access-control-allow-headers'], 'Content-Type, Authorization, X-Origin, X-Requested-With, Accept')
  t.equal(response.headers['access-control-max-age'], '600')
  t.match(response.headers.vary, /Origin/)
  t.equal(response.headers['x-content-type-options'], 'nosniff', 'Helmet headers on preflights too')
})

t.test('Vary: Origin on every answer, errors and 404s included, with or without Origin', async (t) => {
  for (const request of [{ url: '/api/health' }, { url: '/api/tasks' }, { url: '/api/nope' }, { url: '/api/health', headers: { origin: 'https://app.example.com' } }]) {
    const response = await app.inject(request)
    t.match(response.headers.vary, /Origin/, request.url)
  }
})

t.test('the wildcard is never sent', async (t) => {
  // An Origin of `*` is no origin: nothing is allowed. An allowed origin gets itself, never `*`.
  const wildcard = await app.inject({ url: '/api/health', headers: { origin: '*' } })
  t.equal(wildcard.headers['access-control-allow-origin'], undefined, 'Origin: * gets no allow header')
  t.equal(wildcard.headers['access-control-allow-credentials'], undefined)
  const allowed = await app.inject({ url: '/api/health', headers: { origin: 'https://app.example.com' } })
  t.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.com', 'the exact origin echoed')
  t.equal(allowed.headers['access-control-allow-credentials'], 'true')
  const none = await app.inject({ url: '/api/health' })
  t.equal(none.headers['access-control-allow-origin'], undefined, 'no Origin, no allow header')
})

t.test('a refused preflight is logged at info with its origin and the variable to change', async (t) => {
  const refused = await app.inject({
    method: 'OPTIONS', url: '/api/tasks', headers: { origin: 'http://localhost:4200', 'access-control-request-method': 'POST' },
  })
  t.equal(refused.headers['access-control-allow-origin'], undefined)
  const line = logs.lines.map((text) => JSON.parse(text) as { level: number, msg: string, origin?: string }).find((entry) => entry.origin === 'http://localhost:4200')
  t.match(line, { level: 30, origin: 'http://localhost:4200', msg: /refused a preflight from http:\/\/localhost:4200.*CORS_ORIGINS/ })
  await app.inject({ method: 'OPTIONS', url: '/api/tasks', headers: { origin: 'http://localhost:4100', 'access-control-request-method': 'POST' } })
  t.notOk(logs.text.includes('refused a preflight from http://localhost:4100,'), 'an allowed origin is not logged as refused')
})
