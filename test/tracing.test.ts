import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import type { Config } from '../src/config.js'
import { projectRoot } from '../src/paths.js'
import { LogCapture, openTestDatabase, signIn, STRONG_PASSWORD, testConfig, type TestContext } from './helpers/app.js'
import { freePort, waitUntil } from './helpers/server-process.js'
import { programSkip } from './helpers/tools.js'

// What an OTLP/HTTP collector receives (the JSON encoding: ids in hex, attributes as typed values).
interface OtlpValue { stringValue?: string, intValue?: string | number, boolValue?: boolean }
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  attributes?: Array<{ key: string, value: OtlpValue }>
}
interface OtlpExport { resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }> }

/** A collector on loopback: keeps each export's raw body and its spans. */
async function startCollector (t: TestContext) {
  const bodies: string[] = []
  const spans: OtlpSpan[] = []
  const paths: string[] = []
  const server = createServer((request: IncomingMessage, response) => {
    let body = ''
    request.setEncoding('utf8')
    request.on('data', (chunk: string) => { body += chunk })
    request.on('end', () => {
      paths.push(`${request.method} ${request.url} ${request.headers['content-type']}`)
      bodies.push(body)
      const parsed = JSON.parse(body) as OtlpExport
      for (const resource of parsed.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans)
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, spans, paths }
}

// One database for both apps: an embedded one takes seconds to create.
const { database } = await openTestDatabase(t)

/** The real app on the shared database, logging into `logs`; closed at teardown. */
async function buildLoggedApp (t: TestContext, overrides: Partial<Config>, logs: LogCapture): Promise<FastifyInstance> {
  const app = await buildApp({
    config: testConfig(overrides),
    database,
    pressure: { maxEventLoopDelay: 0 },
    logStream: logs,
    logLevel: 'info',
  })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes?.find((entry) => entry.key === key)?.value
  return value?.stringValue ?? (value?.intValue === undefined ? value?.boolValue : Number(value.intValue))
}

t.test('each request is a trace with a span per database statement, and no values in it', async (t) => {
  const collector = await startCollector(t)
  const logs = new LogCapture()
  const app = await buildLoggedApp(t, { otelEndpoint: collector.url }, logs)

  const alice = await signIn(app)
  const marker = `task-title-${Date.now()}`
  const created = await app.inject({ method: 'POST', url: '/api/tasks', cookies: alice.cookies, payload: { title: marker } })
  t.equal(created.statusCode, 201)
  const me = await app.inject({ url: '/api/auth/me', cookies: alice.cookies })
  t.equal(me.statusCode, 200)
  t.equal((await app.inject({ url: '/no/such/route?token=secret-in-url' })).statusCode, 404)
  // Closing the app flushes the spans still batched.
  await app.close()

  t.ok(collector.paths.length > 0, 'the collector received exports')
  t.match(collector.paths[0], /^POST \/v1\/traces application\/json/)

  const byId = new Map(collector.spans.map((span) => [span.spanId, span]))
  const rootOf = (span: OtlpSpan): OtlpSpan => {
    let current = span
    while (current.parentSpanId !== undefined && current.parentSpanId !== '' && byId.has(current.parentSpanId)) current = byId.get(current.parentSpanId)!
    return current
  }
  const requestSpan = (name: string) => collector.spans.find((span) => span.name === name && attribute(span, 'http.route') !== undefined && (span.parentSpanId ?? '') === '')
  const databaseSpansUnder = (root: OtlpSpan) => collector.spans.filter((span) => attribute(span, 'db.system.name') === 'postgresql' && rootOf(span).spanId === root.spanId)

  const meSpan = requestSpan('GET /api/auth/me')
  t.ok(meSpan, 'GET /api/auth/me is a trace of its own')
  if (meSpan !== undefined) {
    t.equal(attribute(meSpan, 'http.route'), '/api/auth/me')
    t.equal(attribute(meSpan, 'http.response.status_code'), 200)
    const statements = databaseSpansUnder(meSpan)
    t.ok(statements.length >= 1, 'its session check is a database span in the same trace')
    t.ok(statements.every((span) => span.traceId === meSpan.traceId))
    t.ok(statements.some((span) => span.name === 'SELECT sessions'), 'named by operation and table')
  }

  const loginSpan = requestSpan('POST /api/auth/login')
  t.ok(loginSpan, 'POST /api/auth/login is a trace')
  if (loginSpan !== undefined) {
    t.equal(attribute(loginSpan, 'http.response.status_code'), 200)
    const names = databaseSpansUnder(loginSpan).map((span) => span.name)
    t.ok(names.includes('SELECT users'), 'the user lookup')
    t.ok(names.includes('transaction'), 'the transaction')
    t.ok(names.includes('INSERT sessions') && names.includes('INSERT refresh_tokens'), 'the statements inside the transaction')
  }
  const createSpan = requestSpan('POST /api/tasks')
  t.ok(createSpan && databaseSpansUnder(createSpan).some((span) => span.name === 'INSERT tasks'), 'the task insert')

  const unmatched = collector.spans.find((span) => attribute(span, 'http.response.status_code') === 404)
  t.equal(unmatched && attribute(unmatched, 'url.path'), '(unmatched)', 'an unmatched URL is not recorded')

  // No parameter value, nor anything else the requests carried, reached the collector.
  const exported = collector.bodies.join('\n')
  for (const value of [alice.username, alice.id, STRONG_PASSWORD, marker, 'secret-in-url', ...Object.values(alice.cookies)]) {
    t.notOk(exported.includes(value), 'no username, id, password, task title, URL secret or cookie in the spans')
  }

  // Every log line of a request carries its trace id, the first one included.
  const lines = logs.text.trim().split('\n').map((line) => JSON.parse(line) as { reqId?: string, traceId?: string, msg: string })
  const requestLines = lines.filter((line) => line.reqId !== undefined)
  t.ok(requestLines.length >= 2 * 6, 'incoming and completed lines for each request')
  const traceIds = new Set(collector.spans.map((span) => span.traceId))
  for (const line of requestLines) {
    t.ok(line.traceId !== undefined && traceIds.has(line.traceId), `"${line.msg}" (${line.reqId}) names its exported trace`)
  }
  const meLines = requestLines.filter((line) => line.traceId === meSpan?.traceId)
  t.same(meLines.map((line) => line.msg), ['incoming request', 'request completed'], "one request's lines share its trace id")
})

t.test('without OTEL_EXPORTER_OTLP_ENDPOINT nothing is traced and the log lines are as before', async (t) => {
  const logs = new LogCapture()
  const app = await buildLoggedApp(t, {}, logs)
  t.equal(app.tracer, undefined)
  t.equal((await app.inject({ url: '/api/health' })).statusCode, 200)
  const lines = logs.text.trim().split('\n').map((line) => JSON.parse(line) as { traceId?: string, msg: string })
  t.same(lines.filter((line) => line.msg === 'incoming request' || line.msg === 'request completed').map((line) => line.msg), ['incoming request', 'request completed'])
  t.ok(lines.every((line) => line.traceId === undefined))
})

t.test('on a terminal, the server logs readable lines, not JSON', { skip: programSkip(t, 'script', 'apt-get install bsdutils') }, async (t) => {
  // `script` runs the server on a pseudo-terminal, as a person's shell would. The server is in a
  // session of its own there: its shell prints its pid, then becomes the server (exec), to be stopped by it.
  const port = await freePort()
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: String(port), HOST: '127.0.0.1', FRONTEND_PORT: '0', DATA_DIR: 'memory://', LOG_LEVEL: 'info' }
  const child = spawn('script', ['-qfec', `echo "server pid $$"; exec ${process.execPath} --import tsx src/server.ts`, '/dev/null'], { cwd: projectRoot(), env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  t.teardown(async () => {
    const pid = /server pid (\d+)/.exec(output)?.[1]
    if (pid !== undefined) try { process.kill(Number(pid), 'SIGKILL') } catch { /* already gone */ }
    // Without the server, script(1) ends with it; without that line, there is no server to wait for.
    if (child.exitCode === null) {
      if (pid === undefined) child.kill('SIGKILL')
      await once(child, 'exit')
    }
  })
  await waitUntil(() => output.includes('Server listening at'), 'the server listening', 60_000)
  const listening = output.split('\n').find((line) => line.includes('Server listening at'))!
  t.match(listening, /INFO/, 'a level word')
  t.notMatch(listening, /^\s*\{/, 'not a JSON object')
  t.notMatch(output, /"level":/, 'no JSON line at all')
})

t.test('LOG_LEVEL decides what is logged: info logs each request, warn only what went wrong', async (t) => {
  const linesAt = async (level: string) => {
    const logs = new LogCapture()
    // The level comes from the configuration read from the environment, as `npm start` reads it.
    const app = await buildApp({ config: testConfig({}, { LOG_LEVEL: level }), database, pressure: { maxEventLoopDelay: 0 }, logStream: logs })
    t.teardown(() => app.close())
    await app.ready()
    t.equal((await app.inject({ url: '/api/health' })).statusCode, 200)
    // A 401 (no token) is an answer, not a fault: at warn it leaves no line either.
    t.equal((await app.inject({ url: '/api/tasks' })).statusCode, 401)
    return logs.text.trim().split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as { level: number, msg: string })
  }
  const info = await linesAt('info')
  t.ok(info.some((line) => line.msg === 'request completed'), 'info: each request is logged')
  const warn = await linesAt('warn')
  t.same(warn.filter((line) => line.msg === 'incoming request' || line.msg === 'request completed'), [], 'warn: no request lines')
  t.ok(warn.every((line) => line.level >= 40), 'warn: nothing below warning')
  const silent = await linesAt('silent')
  t.same(silent, [], 'silent: nothing at all')
})
