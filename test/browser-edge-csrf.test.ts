import t from 'tap'
import { sql } from 'drizzle-orm'
import { tasks, users } from '../src/db/schema.js'
import { buildTestApp, signIn, STRONG_PASSWORD } from './helpers/app.js'

const app = await buildTestApp(t)
const alice = await signIn(app)
const count = async (table: typeof tasks | typeof users) => (await app.db.select({ n: sql<number>`count(*)::int` }).from(table))[0]!.n
const me = () => app.inject({ url: '/api/auth/me', cookies: alice.cookies })

t.test('state-changing requests from a foreign origin are refused with 403 CSRF_ORIGIN and change nothing', async (t) => {
  const tasksBefore = await count(tasks)
  const usersBefore = await count(users)
  const attempts: Array<[string, Record<string, string>]> = [
    ['foreign Origin', { origin: 'https://evil.example' }],
    ['Origin null', { origin: 'null' }],
    ['look-alike Origin', { origin: 'http://localhost:4100.evil.example' }],
    ['no Origin, Sec-Fetch-Site cross-site', { 'sec-fetch-site': 'cross-site' }],
    ['no Origin, Sec-Fetch-Site same-site', { 'sec-fetch-site': 'same-site' }],
    ['no Origin, foreign Referer', { referer: 'https://evil.example/page' }],
    ['no Origin, broken Referer', { referer: 'not a url' }],
    // A DNS-rebinding page: evil.example now resolves to the API's address, and Host matches Origin.
    ['DNS rebinding (Origin matches Host)', { origin: 'http://rebind.example:8086', host: 'rebind.example:8086' }],
  ]
  const requests = [
    { method: 'POST', url: '/api/tasks', payload: { title: 'forged' } },
    { method: 'POST', url: '/api/auth/logout' },
    { method: 'POST', url: '/api/auth/logout-all' },
    { method: 'POST', url: '/api/auth/register', payload: { username: 'csrfuser', password: STRONG_PASSWORD } },
    { method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: STRONG_PASSWORD } },
    { method: 'DELETE', url: `/api/users/${alice.id}` },
    { method: 'PATCH', url: '/api/tasks/00000000-0000-4000-8000-000000000000', payload: { done: true } },
    { method: 'PUT', url: '/api/tasks' },
  ] as const
  for (const [label, headers] of attempts) {
    for (const request of requests) {
      const response = await app.inject({ ...request, headers, cookies: alice.cookies })
      t.equal(response.statusCode, 403, `${label}: ${request.method} ${request.url}`)
      t.equal(response.json().code, 'CSRF_ORIGIN')
      t.notOk(response.headers['set-cookie'], 'no cookie set or cleared')
    }
  }
  t.equal(await count(tasks), tasksBefore, 'no task created')
  t.equal(await count(users), usersBefore, 'no user registered or deleted')
  t.equal((await me()).statusCode, 200, 'still signed in: the forged logouts did nothing')
})

t.test('allowed origins, the API\'s own origin, same-origin fetches and non-browser clients pass', async (t) => {
  const passes: Array<[string, Record<string, string>]> = [
    ['allowed Origin', { origin: 'http://localhost:4100' }],
    ['the other default origin', { origin: 'http://127.0.0.1:4100' }],
    ["the API's own origin (PUBLIC_ORIGIN's default)", { origin: 'http://127.0.0.1:8086' }],
    ["the API's own origin under its other loopback name", { origin: 'http://localhost:8086' }],
    ['Sec-Fetch-Site same-origin', { 'sec-fetch-site': 'same-origin' }],
    ['Sec-Fetch-Site none (typed in the address bar)', { 'sec-fetch-site': 'none' }],
    ['allowed Referer', { referer: 'http://localhost:4100/tasks' }],
    ['no browser headers (curl, scripts)', {}],
  ]
  for (const [label, headers] of passes) {
    const response = await app.inject({ method: 'POST', url: '/api/tasks', headers, cookies: alice.cookies, payload: { title: label } })
    t.equal(response.statusCode, 201, label)
  }
})

t.test('PUBLIC_ORIGIN names the own origin; Host never does', async (t) => {
  const behindProxy = await buildTestApp(t, {}, { env: { PUBLIC_ORIGIN: 'https://api.example.test' } })
  const bob = await signIn(behindProxy)
  const post = (headers: Record<string, string>) =>
    behindProxy.inject({ method: 'POST', url: '/api/tasks', headers, cookies: bob.cookies, payload: { title: 'x' } })
  t.equal((await post({ origin: 'https://api.example.test' })).statusCode, 201, 'the configured own origin passes')
  t.equal((await post({ origin: 'http://127.0.0.1:8086' })).statusCode, 403, 'the loopback default is gone once PUBLIC_ORIGIN is set')
  t.equal((await post({ origin: 'https://other.example.test', host: 'other.example.test' })).statusCode, 403, 'a Host that matches the Origin proves nothing')
})

t.test('safe methods are never refused for their origin (CORS decides who may read)', async (t) => {
  const response = await app.inject({ url: '/api/auth/me', headers: { origin: 'https://evil.example' }, cookies: alice.cookies })
  t.equal(response.statusCode, 200)
  t.equal(response.headers['access-control-allow-origin'], undefined, 'but the browser may not read it')
})

t.test('the check runs before the body is read: a foreign origin with a broken body is still 403', async (t) => {
  const response = await app.inject({ method: 'POST', url: '/api/auth/login', headers: { origin: 'https://evil.example', 'content-type': 'application/json' }, payload: '{broken' })
  t.equal(response.statusCode, 403)
})
