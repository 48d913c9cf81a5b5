import t, { type Test } from 'tap'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { buildApp } from '../src/app.js'
import { FaultProxy } from './helpers/fault-proxy.js'
import { freshDatabaseUrl, signIn, testConfig, type SignedIn } from './helpers/app.js'
import { sampleOf, scrape } from './helpers/metrics.js'

const METRICS_TOKEN = 'metrics-token-for-fault-tests-01'

// The embedded database (PGlite) lives in the process: there is no link to cut.
if (process.env.TEST_DATABASE_URL === undefined || process.env.TEST_DATABASE_URL === '') {
  t.plan(0, 'needs TEST_DATABASE_URL: only a networked Postgres has a link to cut or stall')
} else {
  const databaseUrl = (await freshDatabaseUrl(t))!
  const target = new URL(databaseUrl)
  const proxy = await FaultProxy.start({ host: target.hostname, port: Number(target.port || 5432) })
  t.teardown(() => proxy.close())

  // Not an overload test: a loaded machine must not shed these requests for another reason.
  const app: FastifyInstance = await buildApp({ config: testConfig({ databaseUrl: proxy.urlFor(databaseUrl), metricsToken: METRICS_TOKEN }), pressure: { maxEventLoopDelay: 0 } })
  t.teardown(() => app.close())
  await app.ready()
  const alice: SignedIn = await signIn(app)

  const DEADLINE_MS = 2000

  async function timed (request: InjectOptions): Promise<{ response: LightMyRequestResponse, ms: number }> {
    const started = performance.now()
    // A request still unanswered after 5 s is a hang: say which, rather than wait for tap's timeout.
    const hang = setTimeout(() => console.error(`no answer after 5 s: ${request.method ?? 'GET'} ${request.url as string}`), 5000)
    try {
      const response = await app.inject(request)
      return { response, ms: performance.now() - started }
    } finally {
      clearTimeout(hang)
    }
  }

  // A mix of what needs the database: authenticated reads and writes, a sign-in, readiness.
  const needsDatabase = (): Array<{ label: string, request: InjectOptions }> => [
    { label: 'list tasks', request: { method: 'GET' as const, url: '/api/tasks', cookies: alice.cookies } },
    { label: 'create a task', request: { method: 'POST' as const, url: '/api/tasks', cookies: alice.cookies, payload: { title: 'during the outage' } } },
    { label: 'who am I', request: { method: 'GET' as const, url: '/api/auth/me', cookies: alice.cookies } },
    { label: 'sign in', request: { method: 'POST' as const, url: '/api/auth/login', payload: { username: alice.username, password: alice.password } } },
    { label: 'readiness', request: { method: 'GET' as const, url: '/api/health/ready' } },
  ]

  async function expectUnavailable (t: Test, wave: string) {
    const results = await Promise.all([
      ...needsDatabase().map(async ({ label, request }) => ({ label, ...await timed(request) })),
      // Concurrent load beyond the pool's size must not queue without bound either.
      ...Array.from({ length: 15 }, async () => ({ label: 'extra read', ...await timed({ method: 'GET', url: '/api/tasks', cookies: alice.cookies }) })),
      (async () => ({ label: 'liveness', ...await timed({ method: 'GET', url: '/api/health' }) }))(),
    ])
    for (const { label, response, ms } of results) {
      t.ok(ms < DEADLINE_MS, `${wave}: ${label} answered in ${Math.round(ms)} ms`)
      if (label === 'liveness') {
        t.equal(response.statusCode, 200, `${wave}: liveness stays 200`)
        continue
      }
      t.equal(response.statusCode, 503, `${wave}: ${label} is 503`)
      t.match(response.json(), { statusCode: 503, error: 'Service Unavailable', message: String, code: 'DATABASE_UNAVAILABLE' }, `${wave}: ${label} in the error shape`)
      t.notMatch(response.body, /select|insert|postgres|stack/i, `${wave}: ${label} leaks nothing internal`)
    }
  }

  async function expectRecovery (t: Test) {
    const restoredAt = performance.now()
    let status = 0
    while (performance.now() - restoredAt < 5000) {
      status = (await app.inject({ method: 'GET', url: '/api/tasks', cookies: alice.cookies })).statusCode
      if (status === 200) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const ms = performance.now() - restoredAt
    t.equal(status, 200, 'reads succeed again')
    t.ok(ms < DEADLINE_MS, `back within ${Math.round(ms)} ms of the link healing, with no restart`)
    t.equal((await app.inject({ method: 'GET', url: '/api/health/ready' })).statusCode, 200, 'ready again')
    const created = await app.inject({ method: 'POST', url: '/api/tasks', cookies: alice.cookies, payload: { title: 'after the outage' } })
    t.equal(created.statusCode, 201, 'writes succeed again')
    const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: alice.password } })
    t.equal(login.statusCode, 200, 'sign-in works again')
  }

  t.test('the database answering through the proxy: everything works', async (t) => {
    t.equal((await app.inject({ method: 'GET', url: '/api/health/ready' })).statusCode, 200)
    t.equal((await app.inject({ method: 'GET', url: '/api/tasks', cookies: alice.cookies })).statusCode, 200)
  })

  t.test('a cut link (database down): 503 within 2 s, liveness 200, then recovery without a restart', async (t) => {
    const openingsBefore = sampleOf(await scrape(app, METRICS_TOKEN), 'auth_db_breaker_openings_total')
    proxy.cut()
    await expectUnavailable(t, 'first wave')
    await expectUnavailable(t, 'second wave')
    // The metrics still answer while the database is away: that is when an operator needs them.
    const during = await scrape(app, METRICS_TOKEN)
    t.equal(sampleOf(during, 'auth_db_breaker_open'), 1, 'the breaker gauge shows it open')
    t.equal(sampleOf(during, 'auth_db_breaker_openings_total') - openingsBefore, 1, 'one opening counted')
    proxy.restore()
    await expectRecovery(t)
    t.equal(sampleOf(await scrape(app, METRICS_TOKEN), 'auth_db_breaker_open'), 0, 'closed again')
  })

  t.test('a stalled link (black hole): 503 within 2 s, liveness 200, then recovery without a restart', async (t) => {
    // Warm the pool so that open connections go silent mid-conversation, the case no server-side
    // timeout can see.
    await Promise.all(Array.from({ length: 8 }, () => timed({ method: 'GET', url: '/api/tasks', cookies: alice.cookies })))
    proxy.stall()
    await expectUnavailable(t, 'first wave')
    await expectUnavailable(t, 'second wave')
    proxy.restore()
    await expectRecovery(t)
  })

  t.test('a stall that heals by itself while requests wait', async (t) => {
    proxy.stall()
    const pending = timed({ method: 'GET', url: '/api/tasks', cookies: alice.cookies })
    setTimeout(() => proxy.restore(), 300)
    const { response, ms } = await pending
    t.ok(ms < DEADLINE_MS, `answered in ${Math.round(ms)} ms`)
    t.ok([200, 503].includes(response.statusCode), `200 or 503, never a hang or a 500 (got ${response.statusCode})`)
    await expectRecovery(t)
  })

  t.test('repeated outages leave no stuck connection behind', async (t) => {
    for (let round = 0; round < 3; round++) {
      if (round % 2 === 0) proxy.stall()
      else proxy.cut()
      const results = await Promise.all(Array.from({ length: 12 }, () => timed({ method: 'GET', url: '/api/tasks', cookies: alice.cookies })))
      t.ok(results.every(({ ms, response }) => ms < DEADLINE_MS && response.statusCode === 503), `round ${round}: every request 503 within 2 s`)
      proxy.restore()
      await expectRecovery(t)
    }
    const burst = await Promise.all(Array.from({ length: 30 }, () => app.inject({ method: 'GET', url: '/api/tasks', cookies: alice.cookies })))
    t.ok(burst.every((response) => response.statusCode === 200), 'a burst beyond the pool size all succeeds afterwards')
    const after = await scrape(app, METRICS_TOKEN)
    t.equal(sampleOf(after, 'auth_db_pool_in_use'), 0, 'the pool gauge holds nothing stuck')
    t.equal(sampleOf(after, 'auth_db_pool_waiting'), 0)
  })
}
