import t, { type Test } from 'tap'
import { connect } from 'node:net'
import type { InjectOptions } from 'fastify'
import { buildTestApp, signIn } from './helpers/app.js'
import { checkAnswer, snapshot } from './helpers/fuzz.js'

const app = await buildTestApp(t, { rateLimitAllowList: ['127.0.0.1'] })
const alice = await signIn(app)
const admin = await signIn(app, { role: 'admin' })
const taskId = (await app.inject({ method: 'POST', url: '/api/tasks', cookies: alice.cookies, payload: { title: 'mine' } })).json().task.id as string

/** Sends it; asserts the expected status, the error shape, and (for a 4xx) that no row changed. */
async function hostile (t: Test, label: string, request: InjectOptions, expected: number) {
  const before = await snapshot(app)
  const response = await app.inject(request)
  t.equal(checkAnswer(response, request), undefined, `${label}: answered ${response.statusCode} in the error shape`)
  t.equal(response.statusCode, expected, `${label}: ${expected}`)
  if (response.statusCode >= 400) t.same(await snapshot(app), before, `${label}: nothing changed`)
  return response
}

const deep = (depth: number, leaf: string) => '['.repeat(depth) + leaf + ']'.repeat(depth)
const json = { 'content-type': 'application/json' }

t.test('deep JSON nesting is a 400, not a stack overflow', async (t) => {
  await hostile(t, 'nested array body', { method: 'POST', url: '/api/tasks', cookies: alice.cookies, headers: json, payload: deep(100_000, '1') }, 400)
  await hostile(t, 'nested value in a field', { method: 'POST', url: '/api/tasks', cookies: alice.cookies, headers: json, payload: `{"title":${deep(50_000, '"x"')}}` }, 400)
  await hostile(t, 'nested objects', { method: 'POST', url: '/api/auth/register', headers: json, payload: '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000) }, 400)
})

t.test('huge and odd numbers are refused cleanly', async (t) => {
  await hostile(t, '1e400 (Infinity)', { method: 'POST', url: '/api/tasks', cookies: alice.cookies, headers: json, payload: '{"title":"x","done":1e400}' }, 400)
  await hostile(t, 'a huge title number', { method: 'PATCH', url: `/api/tasks/${taskId}`, cookies: alice.cookies, headers: json, payload: '{"title":123456789012345678901234567890}' }, 400)
  for (const limit of ['1e400', '99999999999999999999', '-1', '0', '1.5', 'NaN', '101']) {
    await hostile(t, `limit=${limit}`, { method: 'GET', url: `/api/tasks?limit=${encodeURIComponent(limit)}`, cookies: alice.cookies }, 400)
  }
  // Query strings are coerced (API.md): to Ajv these are numbers in range (16, 5, 10), so they are served.
  for (const limit of ['0x10', ' 5', '1e1']) await hostile(t, `limit=${JSON.stringify(limit)}`, { method: 'GET', url: `/api/tasks?limit=${encodeURIComponent(limit)}`, cookies: alice.cookies }, 200)
  await hostile(t, 'a cursor of garbage', { method: 'GET', url: '/api/tasks?cursor=' + 'A'.repeat(200), cookies: alice.cookies }, 400)
  // Forged cursors with dates JavaScript accepts and Postgres does not (these were 500s).
  for (const at of ['+275760-09-13T00:00:00.000Z', '99999-01-01', '0000-01-01T00:00:00.000Z', '-000001-01-01T00:00:00.000Z']) {
    const cursor = Buffer.from(`${at}|${taskId}`).toString('base64url')
    await hostile(t, `a cursor dated ${at}`, { method: 'GET', url: `/api/tasks?cursor=${cursor}`, cookies: alice.cookies }, 400)
    await hostile(t, `a users cursor dated ${at}`, { method: 'GET', url: `/api/users?cursor=${cursor}`, cookies: admin.cookies }, 400)
    await hostile(t, `an audit cursor dated ${at}`, { method: 'GET', url: `/api/audit?cursor=${cursor}`, cookies: admin.cookies }, 400)
  }
})

t.test('prototype-pollution keys are refused and pollute nothing', async (t) => {
  const bodies = [
    '{"__proto__":{"role":"admin"},"username":"polluter1","password":"violet-Kettle-42-orbit"}',
    '{"constructor":{"prototype":{"role":"admin"}},"username":"polluter2","password":"violet-Kettle-42-orbit"}',
    '{"username":"polluter3","password":"violet-Kettle-42-orbit","__proto__":null}',
  ]
  for (const payload of bodies) await hostile(t, `register ${payload.slice(0, 30)}`, { method: 'POST', url: '/api/auth/register', headers: json, payload }, 400)
  await hostile(t, 'role via __proto__', { method: 'PATCH', url: `/api/users/${alice.id}`, cookies: admin.cookies, headers: json, payload: '{"__proto__":{"role":"admin"}}' }, 400)
  await hostile(t, 'task via constructor', { method: 'PATCH', url: `/api/tasks/${taskId}`, cookies: alice.cookies, headers: json, payload: '{"constructor":{"prototype":{"done":true}}}' }, 400)
  await hostile(t, 'query __proto__', { method: 'GET', url: '/api/tasks?__proto__[role]=admin&constructor[prototype][x]=1', cookies: alice.cookies }, 400)
  t.equal(({} as Record<string, unknown>).role, undefined, 'Object.prototype untouched')
  t.equal((await app.inject({ method: 'GET', url: '/api/auth/me', cookies: alice.cookies })).json().user.role, 'user', 'still a user')
})

t.test('many cookies, odd cookies, and bad encodings', async (t) => {
  const many = Array.from({ length: 3000 }, (_, i) => `c${i}=${'v'.repeat(10)}`).join('; ')
  const access = Object.entries(alice.cookies).map(([name, value]) => `${name}=${value}`).join('; ')
  const response = await hostile(t, '3000 cookies and the real one', { method: 'GET', url: '/api/auth/me', headers: { cookie: `${many}; ${access}` } }, 200)
  t.equal(response.json().user.id, alice.id, 'the real cookie is still found')
  // A planted duplicate is refused, never served from whichever comes first.
  await hostile(t, 'a duplicated access cookie', { method: 'GET', url: '/api/auth/me', headers: { cookie: `${app.config.accessCookieName}=garbage; ${access}` } }, 401)
  await hostile(t, 'a cookie of percent garbage', { method: 'GET', url: '/api/auth/me', headers: { cookie: `${app.config.accessCookieName}=%E0%A4%A; ${app.config.refreshCookieName}=%%%` } }, 401)
  await hostile(t, 'refresh with percent garbage', { method: 'POST', url: '/api/auth/refresh', headers: { cookie: `${app.config.refreshCookieName}=%E0%A4%A` } }, 401)
  // The decoder replaces invalid bytes with U+FFFD, as WHATWG decoding does: a title, stored as such.
  await hostile(t, 'invalid UTF-8 in a JSON body', { method: 'POST', url: '/api/tasks', cookies: alice.cookies, headers: json, payload: Buffer.from([0x7b, 0x22, 0x74, 0x69, 0x74, 0x6c, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }, 201)
  await hostile(t, 'a NUL in a path parameter', { method: 'GET', url: '/api/tasks/%00', cookies: alice.cookies }, 400)
  await hostile(t, 'a broken percent escape in the path', { method: 'GET', url: '/api/tasks/%E0%A4%A', cookies: alice.cookies }, 400)
  // Fastify's maxParamLength (100): refused before routing.
  await hostile(t, 'a 10 000-character id', { method: 'DELETE', url: `/api/tasks/${'a'.repeat(10_000)}`, cookies: alice.cookies }, 414)
  await hostile(t, 'a Bearer of 100 kB', { method: 'GET', url: '/api/auth/me', headers: { authorization: `Bearer ${'a'.repeat(100_000)}` } }, 401)
})

t.test('oversize headers are refused by the HTTP server before the app sees them (431), and it lives on', async (t) => {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const raw = (head: string) => new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(head))
    let answer = ''
    socket.on('data', (chunk: Buffer) => { answer += chunk.toString() })
    socket.on('close', () => resolve(answer))
    socket.on('error', () => resolve(answer))
  })
  const big = await raw(`GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\nConnection: close\r\n\r\n`)
  t.match(big, /^HTTP\/1\.1 431 /, 'a 64 KiB header: 431')
  const cookies = await raw(`GET /api/auth/me HTTP/1.1\r\nHost: x\r\nCookie: ${Array.from({ length: 5000 }, (_, i) => `c${i}=v`).join('; ')}\r\nConnection: close\r\n\r\n`)
  t.match(cookies, /^HTTP\/1\.1 431 /, '5000 cookies: 431')
  const longUrl = await raw(`GET /api/tasks?cursor=${'a'.repeat(70_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  t.match(longUrl, /^HTTP\/1\.1 (431|414) /, 'a 70 kB URL: refused')
  const manyHeaders = await raw(`GET /api/health HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-H${i}: v\r\n`).join('')}Connection: close\r\n\r\n`)
  t.match(manyHeaders, /^HTTP\/1\.1 (200|431) /, '3000 headers: served or refused, not a crash')
  const health = await fetch(`http://127.0.0.1:${port}/api/health`)
  t.equal(health.status, 200, 'the server still answers')
})
