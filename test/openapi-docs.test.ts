import t from 'tap'
import SwaggerParser from '@apidevtools/swagger-parser'
import { buildTestApp } from './helpers/app.js'

// Every route of ../shared/API.md, as OpenAPI writes it.
const CONTRACT = [
  'post /api/auth/register', 'post /api/auth/login', 'post /api/auth/refresh', 'post /api/auth/logout',
  'post /api/auth/logout-all', 'get /api/auth/sessions', 'delete /api/auth/sessions/{id}', 'get /api/auth/me',
  'post /api/auth/password', 'post /api/auth/token',
  'get /api/tasks/', 'post /api/tasks/', 'get /api/tasks/{id}', 'patch /api/tasks/{id}', 'delete /api/tasks/{id}',
  'get /api/users/', 'get /api/users/{id}', 'patch /api/users/{id}', 'delete /api/users/{id}', 'delete /api/users/{id}/sessions',
  'get /api/audit/', 'get /api/health/', 'get /api/health/ready',
]

t.test('the OpenAPI document is valid and lists every route of the contract with its security', async (t) => {
  const app = await buildTestApp(t)
  const response = await app.inject({ url: '/api/docs/json' })
  t.equal(response.statusCode, 200)
  const document = response.json()
  await t.resolves(SwaggerParser.validate(structuredClone(document)), 'a valid OpenAPI 3 document')
  const listed = Object.entries(document.paths as Record<string, Record<string, unknown>>)
    .flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method} ${path}`))
  for (const route of CONTRACT) t.ok(listed.includes(route), route)
  t.match(document.components.securitySchemes, {
    cookieAuth: { type: 'apiKey', in: 'cookie', name: '__Host-access_token' },
    bearerAuth: { type: 'http', scheme: 'bearer' },
  })
  t.ok(document.paths['/api/tasks/'].get.security, 'protected routes name their security')
  t.notOk(JSON.stringify(document).includes('passwordHash'), 'no internal field in any schema')
})

// The failures API.md gives each route (plus the ones every route of a kind shares: 400 for input,
// 401 behind sign-in, 403 CSRF on state changes, 429, 503), as the OpenAPI document must list them.
const FAILURES: Record<string, number[]> = {
  'post /api/auth/register': [400, 403, 409, 429, 503],
  'post /api/auth/login': [400, 401, 403, 429, 503],
  'post /api/auth/token': [400, 401, 403, 429, 503],
  'post /api/auth/refresh': [401, 403, 429, 503],
  'post /api/auth/logout': [401, 403, 429, 503],
  'post /api/auth/logout-all': [401, 403, 429, 503],
  'get /api/auth/sessions': [401, 429, 503],
  'delete /api/auth/sessions/{id}': [400, 401, 403, 404, 429, 503],
  'get /api/auth/me': [401, 429, 503],
  'post /api/auth/password': [400, 401, 403, 429, 503],
  'get /api/tasks/': [400, 401, 429, 503],
  'post /api/tasks/': [400, 401, 403, 413, 415, 429, 503],
  'get /api/tasks/{id}': [400, 401, 404, 429, 503],
  'patch /api/tasks/{id}': [400, 401, 403, 404, 413, 415, 429, 503],
  'delete /api/tasks/{id}': [400, 401, 403, 404, 429, 503],
  'get /api/users/': [400, 401, 403, 429, 503],
  'get /api/users/{id}': [400, 401, 404, 429, 503],
  'patch /api/users/{id}': [400, 401, 403, 404, 409, 429, 503],
  'delete /api/users/{id}': [400, 401, 403, 404, 409, 429, 503],
  'delete /api/users/{id}/sessions': [400, 401, 403, 404, 429, 503],
  'get /api/audit/': [400, 401, 403, 429, 503],
  'get /api/health/ready': [503],
}

t.test('every route documents the failures of its contract, in the error shape, with Retry-After on 429 and 503', async (t) => {
  const app = await buildTestApp(t)
  const document = (await app.inject({ url: '/api/docs/json' })).json()
  for (const [route, statuses] of Object.entries(FAILURES)) {
    const [method, path] = route.split(' ') as [string, string]
    const responses = document.paths[path][method].responses as Record<string, { description: string, content?: Record<string, { schema: { properties: object } }>, headers?: object }>
    for (const status of statuses) {
      const response = responses[String(status)]
      t.ok(response, `${route} documents ${status}`)
      if (response === undefined) continue
      t.not(response.description, 'Default Response', `${route} ${status} says what it means`)
      t.match(response.content?.['application/json']?.schema.properties, { statusCode: {}, error: {}, message: {}, code: {} }, `${route} ${status} has the error shape`)
      if (status === 429 || status === 503) t.ok(response.headers && 'Retry-After' in response.headers, `${route} ${status} names Retry-After`)
    }
  }
  // Beyond the contract's table (second factors, passkeys, e-mail, identity providers, metrics):
  // every operation but liveness documents its failures, each in the error shape.
  type Operation = { responses: Record<string, { content?: Record<string, { schema: { properties?: object } }>, headers?: object }> }
  for (const [path, operations] of Object.entries(document.paths as Record<string, Record<string, Operation>>)) {
    if (path === '/api/health/') continue
    for (const [method, operation] of Object.entries(operations)) {
      const failures = Object.entries(operation.responses).filter(([status]) => Number(status) >= 400)
      t.ok(failures.length > 0, `${method} ${path} documents its failures`)
      for (const [status, response] of failures) {
        t.match(response.content?.['application/json']?.schema.properties, { statusCode: {}, error: {}, message: {} }, `${method} ${path} ${status} has the error shape`)
        if (status === '429' || status === '503') t.ok(response.headers && 'Retry-After' in response.headers, `${method} ${path} ${status} names Retry-After`)
      }
    }
  }
  const liveness = document.paths['/api/health/'].get.responses
  t.same(Object.keys(liveness), ['200'], 'liveness documents no failure: it is never shed nor limited')
  t.match(document.paths['/api/auth/login'].post.responses['200'].headers, { 'Set-Cookie': { description: /__Host-access_token.*__Secure-refresh_token/ } }, 'the cookies sign-in sets')
  t.match(document.paths['/api/auth/mfa/verify'].post.responses['200'].headers, { 'Set-Cookie': { description: /__Host-access_token.*__Secure-refresh_token/ } }, 'the cookies the second step sets')
  t.match(document.paths['/api/auth/refresh'].post.security, [{ refreshCookie: [] }], 'the cookie /refresh reads')
  t.match(document.components.securitySchemes.refreshCookie, { type: 'apiKey', in: 'cookie', name: '__Secure-refresh_token' })
  t.match(document.paths['/api/auth/register'].post.responses['409'].description, /USERNAME_TAKEN/)
  await t.resolves(SwaggerParser.validate(structuredClone(document)), 'still a valid OpenAPI 3 document')
})

t.test('documenting the failures changes no answer: an error still has its whole shape', async (t) => {
  const app = await buildTestApp(t)
  const missing = await app.inject({ url: '/api/tasks/00000000-0000-4000-8000-000000000000' })
  t.equal(missing.statusCode, 401)
  t.same(Object.keys(missing.json()).sort(), ['code', 'error', 'message', 'statusCode'])
})

t.test('the docs page is served with a policy of its own; the API keeps its deny-all policy', async (t) => {
  const app = await buildTestApp(t)
  const page = await app.inject({ url: '/api/docs/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.headers['content-security-policy'], /script-src 'self'/)
  t.notMatch(page.headers['content-security-policy'], /upgrade-insecure-requests/, 'works on plain-HTTP development hosts')
  const api = await app.inject({ url: '/api/health' })
  t.match(api.headers['content-security-policy'], /default-src 'none'/)
})

t.test('DOCS=false serves no docs', async (t) => {
  const app = await buildTestApp(t, { docs: false })
  t.equal((await app.inject({ url: '/api/docs/json' })).statusCode, 404)
  t.equal((await app.inject({ url: '/api/docs' })).statusCode, 404)
})
