import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { eq } from 'drizzle-orm'
import t from 'tap'
import { hashRefreshToken } from '../src/db/queries/sessions.js'
import { refreshTokens, users } from '../src/db/schema.js'
import { buildApp } from '../src/app.js'
import { cookiesFrom, openTestDatabase, signIn, STRONG_PASSWORD, testConfig } from './helpers/app.js'
import { promtool, sampleOf, scrape } from './helpers/metrics.js'
import { toolSkip } from './helpers/tools.js'

const TOKEN = 'metrics-token-for-tests-0123456789'
const REFRESH = '__Secure-refresh_token'
const hasPromtool = (() => {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()
const noPromtool = toolSkip(t, 'promtool', hasPromtool, 'apt-get install -y prometheus')

t.test('with METRICS_TOKEN', async (t) => {
  // The database opened here, not by the app: a new embedded one can take longer than Fastify
  // gives a plugin to start on a loaded machine.
  const { database } = await openTestDatabase(t)
  const app = await buildApp({ config: testConfig({ metricsToken: TOKEN }), database, pressure: { maxEventLoopDelay: 0 } })
  t.teardown(() => app.close())
  await app.ready()

  t.test('without METRICS_TOKEN there is no metrics route: 404', async (t) => {
    // Another app on the same database: an embedded one takes seconds to create.
    const bare = await buildApp({ config: testConfig(), database: app.database, pressure: { maxEventLoopDelay: 0 } })
    t.teardown(() => bare.close())
    const response = await bare.inject({ url: '/api/metrics', headers: { authorization: `Bearer ${TOKEN}` } })
    t.equal(response.statusCode, 404)
    t.equal(response.json().code, 'ROUTE_NOT_FOUND')
  })

  t.test('a missing, wrong or differently-schemed token is 401 and shows nothing', async (t) => {
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer ' },
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
      { authorization: `Basic ${TOKEN}` },
      { authorization: TOKEN },
    ]
    for (const headers of attempts) {
      const response = await app.inject({ url: '/api/metrics', headers })
      t.equal(response.statusCode, 401, JSON.stringify(headers))
      t.equal(response.json().code, 'METRICS_TOKEN_INVALID')
      t.equal(response.headers['www-authenticate'], 'Bearer realm="metrics"')
      t.notMatch(response.body, /http_requests_total/)
    }
    const right = await app.inject({ url: '/api/metrics', headers: { authorization: `bearer ${TOKEN}` } })
    t.equal(right.statusCode, 200, 'the scheme is case-insensitive')
    t.match(right.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  })

  t.test('the route is in the OpenAPI document, behind its own bearer scheme', async (t) => {
    const document = (await app.inject({ url: '/api/docs/json' })).json()
    t.match(document.paths['/api/metrics/'].get, { tags: ['metrics'], security: [{ metricsToken: [] }] })
    t.match(document.components.securitySchemes.metricsToken, { type: 'http', scheme: 'bearer' })
  })

  t.test('after a scripted workload each counter moved by exactly what was done', async (t) => {
    const before = await scrape(app, TOKEN)
    const delta = (after: string, series: string) => sampleOf(after, series) - sampleOf(before, series)

    // Two users sign up and in: 2 registrations, 2 cookie sign-ins.
    const alice = await signIn(app)
    const bob = await signIn(app)
    // One Bearer sign-in.
    const token = await app.inject({ method: 'POST', url: '/api/auth/token', payload: { username: bob.username, password: STRONG_PASSWORD } })
    t.equal(token.statusCode, 200)
    // Ten wrong passwords for alice (only failures count per account), so the next attempt, even
    // with the right password and from a client without her device cookie, meets the limit.
    for (let i = 0; i < 10; i++) {
      const wrong = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: 'not-her-Password-1' } })
      t.equal(wrong.statusCode, 401)
    }
    const refused = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: STRONG_PASSWORD } })
    t.equal(refused.statusCode, 429)
    // A rotation, a grace answer with the token just replaced, an invalid refresh, and a reuse.
    const rotated = await app.inject({ method: 'POST', url: '/api/auth/refresh', cookies: bob.cookies })
    t.equal(rotated.statusCode, 200)
    const grace = await app.inject({ method: 'POST', url: '/api/auth/refresh', cookies: bob.cookies })
    t.equal(grace.statusCode, 200)
    const invalid = await app.inject({ method: 'POST', url: '/api/auth/refresh' })
    t.equal(invalid.statusCode, 401)
    // The replaced token seen an hour later is theft: backdate its replacement instead of waiting.
    await app.db.update(refreshTokens).set({ replacedAt: new Date(Date.now() - 3_600_000) })
      .where(eq(refreshTokens.tokenHash, hashRefreshToken(bob.cookies[REFRESH]!)))
    const reused = await app.inject({ method: 'POST', url: '/api/auth/refresh', cookies: bob.cookies })
    t.equal(reused.statusCode, 401)
    t.equal(reused.json().code, 'REFRESH_REUSED')
    // Three reads of /me, and one URL no route matches, with something secret-looking in it.
    const next = cookiesFrom(rotated, bob.cookies)
    for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/api/auth/me', cookies: alice.cookies })).statusCode, 200)
    t.equal((await app.inject({ url: '/no/such/route?token=secret-in-url' })).statusCode, 404)

    const after = await scrape(app, TOKEN)
    const expected: Record<string, number> = {
      'auth_sign_ins_total{method="password",outcome="success"}': 3,
      'auth_sign_ins_total{method="password",outcome="failure"}': 10,
      'auth_sign_ins_total{method="password",outcome="second_factor_required"}': 0,
      'auth_refreshes_total{outcome="rotated"}': 1,
      'auth_refreshes_total{outcome="grace"}': 1,
      'auth_refreshes_total{outcome="invalid"}': 1,
      'auth_refreshes_total{outcome="reused"}': 1,
      'auth_rate_limit_refusals_total{limit="credentials_account"}': 1,
      'auth_rate_limit_refusals_total{limit="credentials_ip"}': 0,
      'auth_rate_limit_refusals_total{limit="global"}': 0,
      'http_requests_total{method="POST",route="/api/auth/register",status_code="201"}': 2,
      'http_requests_total{method="POST",route="/api/auth/login",status_code="200"}': 2,
      'http_requests_total{method="POST",route="/api/auth/login",status_code="401"}': 10,
      'http_requests_total{method="POST",route="/api/auth/login",status_code="429"}': 1,
      'http_requests_total{method="POST",route="/api/auth/token",status_code="200"}': 1,
      'http_requests_total{method="POST",route="/api/auth/refresh",status_code="200"}': 2,
      'http_requests_total{method="POST",route="/api/auth/refresh",status_code="401"}': 2,
      'http_requests_total{method="GET",route="/api/auth/me",status_code="200"}': 3,
      'http_requests_total{method="GET",route="unmatched",status_code="404"}': 1,
      'http_request_duration_seconds_count{method="POST",route="/api/auth/login",status_code="401"}': 10,
      'http_request_duration_seconds_count{method="GET",route="/api/auth/me",status_code="200"}': 3,
      // The first scrape itself, answered before the second one read the counters.
      'http_requests_total{method="GET",route="/api/metrics",status_code="200"}': 1,
    }
    for (const [series, value] of Object.entries(expected)) t.equal(delta(after, series), value, series)
    t.ok(sampleOf(after, 'http_request_duration_seconds_sum{method="GET",route="/api/auth/me",status_code="200"}') > 0, 'durations recorded')

    // Nothing that identifies a person or a credential is in any label.
    for (const secret of [alice.username, bob.username, alice.id, bob.id, STRONG_PASSWORD, bob.cookies[REFRESH]!, next[REFRESH]!, 'secret-in-url']) {
      t.notOk(after.includes(secret), 'the scrape holds no username, id, password or token')
    }

    // At rest, every statement and transaction has given its connection back.
    t.equal(sampleOf(after, 'auth_db_pool_in_use'), 0, 'nothing holds a connection at rest')
    t.equal(sampleOf(after, 'auth_db_pool_waiting'), 0)
    t.equal(sampleOf(after, 'auth_db_pool_size'), process.env.TEST_DATABASE_URL ? 10 : 1)
    t.equal(sampleOf(after, 'auth_db_breaker_open'), 0)
    t.match(after, /^nodejs_eventloop_lag_p99_seconds \d/m, 'event-loop delay')
    t.match(after, /^process_resident_memory_bytes \d/m, "Node's default metrics")
    for (const name of ['auth_second_factor_checks_total', 'auth_passkey_ceremonies_total', 'auth_mails_sent_total', 'auth_mails_failed_total', 'auth_mails_waiting']) {
      t.match(after, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is declared for the features that record it`)
    }
  })

  t.test('the pool gauges count the connections held and wanted', async (t) => {
    const size = sampleOf(await scrape(app, TOKEN), 'auth_db_pool_size')
    let outside: Promise<unknown> | undefined
    await app.db.transaction(async (tx) => {
      await tx.select({ id: users.id }).from(users).limit(1)
      // A second holder while the transaction keeps its connection: on the embedded database (one
      // connection) it has to wait, so it is only awaited once the transaction is over.
      outside = app.db.select({ id: users.id }).from(users).limit(1).then((rows) => rows)
      const during = await scrape(app, TOKEN)
      t.equal(sampleOf(during, 'auth_db_pool_in_use'), Math.min(2, size), 'in use')
      t.equal(sampleOf(during, 'auth_db_pool_waiting'), Math.max(0, 2 - size), 'waiting')
    })
    await outside
    const after = await scrape(app, TOKEN)
    t.equal(sampleOf(after, 'auth_db_pool_in_use'), 0, 'every connection given back')
    t.equal(sampleOf(after, 'auth_db_pool_waiting'), 0)
  })

  t.test('every series the dashboard and the alert rules read is one the API exposes', async (t) => {
    const exposed = await scrape(app, TOKEN)
    const sources = {
      dashboard: readFileSync('deploy/grafana/cookie-auth-api.json', 'utf8'),
      alerts: readFileSync('deploy/prometheus/alerts.yml', 'utf8'),
    }
    JSON.parse(sources.dashboard)
    for (const [source, text] of Object.entries(sources)) {
      const names = new Set([...text.matchAll(/\b(?:http|auth|nodejs|process)_[a-z0-9_]+/g)].map(([name]) => name.replace(/_(bucket|count|sum)$/, '')))
      t.ok(names.size > 5, `${source} reads our series`)
      for (const name of names) t.match(exposed, new RegExp(`^# TYPE ${name} `, 'm'), `${source}: ${name}`)
    }
  })

  t.test('promtool finds nothing wrong with the exposition', { skip: noPromtool }, async (t) => {
    const { code, output } = await promtool(['check', 'metrics'], await scrape(app, TOKEN))
    t.equal(code, 0, output)
    t.equal(output.trim(), '', 'no lint warnings')
  })
})

t.test('the alert rules pass promtool check rules, and each fires on what it is for', { skip: noPromtool }, async (t) => {
  const checked = await promtool(['check', 'rules', 'deploy/prometheus/alerts.yml'])
  t.equal(checked.code, 0, checked.output)
  t.match(checked.output, /SUCCESS: \d+ rules found/)
  const tested = await promtool(['test', 'rules', 'deploy/prometheus/alerts.test.yml'])
  t.equal(tested.code, 0, tested.output)
})
