import t from 'tap'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import errorsPlugin from '../plugins/errors.js'
import pressurePlugin, { OVERLOAD_RETRY_AFTER_S } from '../plugins/pressure.js'
import { buildTestApp, signIn } from './helpers/app.js'
import { waitUntil } from './helpers/server-process.js'

/** Keeps the event loop saturated: turns of `tickMs` of synchronous work, for `totalMs`. */
async function saturate (totalMs: number, tickMs: number) {
  const end = performance.now() + totalMs
  while (performance.now() < end) {
    const tickEnd = performance.now() + tickMs
    while (performance.now() < tickEnd) { /* busy: what a CPU-bound backlog does to the loop */ }
    await nextTurn()
  }
}

t.test('a saturated event loop sheds requests with 503 OVERLOADED and Retry-After, then recovers', async (t) => {
  // The production thresholds (buildTestApp turns event-loop shedding off unless asked).
  const app = await buildTestApp(t, {}, { pressure: {} })
  // Opening an in-memory PGlite blocks the loop for seconds: the first samples after it say so.
  for (let waited = 0; waited < 5000 && (await app.inject({ method: 'GET', url: '/api/health/ready' })).statusCode !== 200; waited += 100) await sleep(100)
  const alice = await signIn(app)
  t.equal((await app.inject({ method: 'GET', url: '/api/tasks', cookies: alice.cookies })).statusCode, 200, 'served before')

  // 1.3 s turns for a few sample intervals: a mean delay over the 1 s limit.
  await saturate(3000, 1300)
  const shed = await app.inject({ method: 'GET', url: '/api/tasks', cookies: alice.cookies })
  t.equal(shed.statusCode, 503)
  t.match(shed.json(), { statusCode: 503, error: 'Service Unavailable', message: String, code: 'OVERLOADED' }, 'in the error shape')
  t.equal(shed.headers['retry-after'], String(OVERLOAD_RETRY_AFTER_S), 'says when to retry')
  t.ok(shed.headers['x-content-type-options'], 'security headers on the refusal too')
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: alice.password } })
  t.equal(login.statusCode, 503, 'a sign-in is shed before any password is hashed')
  t.equal((await app.inject({ method: 'GET', url: '/api/health/ready' })).statusCode, 503, 'not ready while overloaded')
  t.equal((await app.inject({ method: 'GET', url: '/api/health' })).statusCode, 200, 'liveness stays 200: the process is alive')

  // Once the backlog is gone, the next samples clear the state.
  const calmSince = performance.now()
  let status = 503
  while (status === 503 && performance.now() - calmSince < 5000) {
    await sleep(100)
    status = (await app.inject({ method: 'GET', url: '/api/tasks', cookies: alice.cookies })).statusCode
  }
  t.equal(status, 200, `served again ${Math.round(performance.now() - calmSince)} ms after the load stopped`)
})

t.test('a heap over its limit sheds requests the same way (plugin alone, tiny limit)', async (t) => {
  const app = Fastify()
  await app.register(errorsPlugin)
  await app.register(pressurePlugin, { maxHeapUsedBytes: 1, sampleInterval: 50 })
  app.get('/api/work', async () => ({ ok: true }))
  app.get('/api/health', { config: { shed: false } }, async () => ({ status: 'ok' }))
  t.teardown(() => app.close())
  await app.ready()
  // The first heap sample (every 50 ms) turns shedding on: wait for it rather than for a fixed time.
  let response = await app.inject({ method: 'GET', url: '/api/work' })
  await waitUntil(async () => { response = await app.inject({ method: 'GET', url: '/api/work' }); return response.statusCode !== 200 }, 'the first heap sample')
  t.equal(response.statusCode, 503)
  t.match(response.json(), { statusCode: 503, code: 'OVERLOADED' })
  t.equal(response.headers['retry-after'], String(OVERLOAD_RETRY_AFTER_S))
  t.equal((await app.inject({ method: 'GET', url: '/api/health' })).statusCode, 200, 'liveness is exempt')
})
