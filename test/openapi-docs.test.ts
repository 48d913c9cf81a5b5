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
