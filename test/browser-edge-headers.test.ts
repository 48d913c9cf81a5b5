import t from 'tap'
import { buildTestApp } from './helpers/app.js'

const app = await buildTestApp(t)

t.test('Helmet headers on every answer: success, 401, 404, 400, 415 and preflights', async (t) => {
  const requests = [
    { url: '/api/health' },
    { url: '/api/tasks' },
    { url: '/api/does-not-exist' },
    { method: 'POST' as const, url: '/api/auth/login', payload: {} },
    { method: 'POST' as const, url: '/api/auth/login', headers: { 'content-type': 'text/plain' }, payload: 'x' },
    { method: 'OPTIONS' as const, url: '/api/tasks', headers: { origin: 'http://localhost:4100', 'access-control-request-method': 'POST' } },
  ]
  for (const request of requests) {
    const response = await app.inject(request)
    const label = `${request.method ?? 'GET'} ${request.url} (${response.statusCode})`
    t.equal(response.headers['content-security-policy'], "default-src 'none';frame-ancestors 'none';base-uri 'none';form-action 'none'", label)
    t.equal(response.headers['strict-transport-security'], 'max-age=63072000; includeSubDomains', label)
    t.equal(response.headers['x-content-type-options'], 'nosniff', label)
    t.equal(response.headers['x-frame-options'], 'SAMEORIGIN', label)
    t.equal(response.headers['referrer-policy'], 'no-referrer', label)
    t.equal(response.headers['x-powered-by'], undefined, label)
    t.equal(response.headers['cache-control'], 'no-store', label)
  }
})

t.test('Cache-Control: no-store on every /api answer, the token and the docs included, but the docs\' static files', async (t) => {
  const username = `cache_${Date.now()}`
  const password = 'violet-Kettle-42-orbit'
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username, password } })).statusCode, 201)
  const token = await app.inject({ method: 'POST', url: '/api/auth/token', payload: { username, password } })
  t.equal(token.statusCode, 200)
  t.equal(token.headers['cache-control'], 'no-store', 'the answer that carries a token')
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password } })
  t.equal(login.headers['cache-control'], 'no-store', 'the sign-in')
  t.equal((await app.inject({ url: '/api/auth/me', headers: { authorization: `Bearer ${token.json().access_token}` } })).headers['cache-control'], 'no-store')
  t.equal((await app.inject({ url: '/api/docs/json' })).headers['cache-control'], 'no-store', 'the OpenAPI document')
  const staticFile = await app.inject({ url: '/api/docs/static/swagger-ui.css' })
  t.equal(staticFile.statusCode, 200)
  t.not(staticFile.headers['cache-control'], 'no-store', 'the docs\' static files may be cached')
})

t.test('errors never carry a stack, SQL or internals', async (t) => {
  const responses = await Promise.all([
    app.inject({ url: '/api/tasks/00000000-0000-4000-8000-000000000000' }),
    app.inject({ method: 'POST', url: '/api/auth/register', headers: { 'content-type': 'application/json' }, payload: '{"a":' }),
    app.inject({ url: '/api/tasks?limit=abc' }),
  ])
  for (const response of responses) {
    const body = response.json()
    t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
    t.notMatch(response.body, /at \w+ \(|select |insert |\/work\/|node_modules/i)
  }
})
