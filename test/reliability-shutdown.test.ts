import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { freshDatabaseUrl, STRONG_PASSWORD, uniqueName } from './helpers/app.js'
import { HttpClient, holdRequestOpen, isRefused } from './helpers/http-client.js'
import { countInOutput, killServer, startServer, waitForOutput, waitUntil, type ServerProcess } from './helpers/server-process.js'

// The real server process, on Postgres when TEST_DATABASE_URL is set, else on PGlite in a temp folder.
const databaseUrl = await freshDatabaseUrl(t)
const dataDir = await mkdtemp(join(tmpdir(), 'cookie-auth-shutdown-'))
t.teardown(() => rm(dataDir, { recursive: true, force: true }))
const env = { DATA_DIR: dataDir, DATABASE_URL: databaseUrl ?? '', RATE_LIMIT_ALLOWLIST: '127.0.0.1' }

const INCOMING = /"msg":"incoming request"/

/** After a signal: the server said so and stopped listening (new connections refused). */
async function stoppedListening (server: ServerProcess): Promise<void> {
  await waitForOutput(server, /"msg":"shutting down"/)
  await waitUntil(() => isRefused(server.port), 'new connections refused after the signal')
}

/** Backends connected to the test database, other than the one asking. */
async function backendsOn (url: string): Promise<number> {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    const [row] = await sql<Array<{ n: number }>>`select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`
    return row!.n
  } finally {
    await sql.end()
  }
}

t.test('SIGTERM: stops accepting, finishes requests in flight, closes the pool, exits 0', async (t) => {
  const server = await startServer(env)
  t.teardown(() => killServer(server))
  const alice = new HttpClient(server.url)
  const username = uniqueName('alice')
  t.equal((await alice.request('POST', '/api/auth/register', { username, password: STRONG_PASSWORD })).status, 201)
  if (databaseUrl !== undefined) t.ok(await backendsOn(databaseUrl) > 0, 'the pool holds connections while running')

  // In flight when the signal comes: a registration whose body is half sent (so surely accepted and
  // unfinished), and sign-ins busy hashing.
  const received = countInOutput(server, INCOMING)
  const held = await holdRequestOpen(server.port, '/api/auth/register', { username: uniqueName('late'), password: STRONG_PASSWORD })
  const signIns = Array.from({ length: 4 }, () => new HttpClient(server.url).request('POST', '/api/auth/login', { username, password: STRONG_PASSWORD }))
  // The server logged all five requests: from then on they are in flight.
  await waitForOutput(server, INCOMING, received + 5)
  const signalledAt = performance.now()
  server.child.kill('SIGTERM')

  await stoppedListening(server)
  t.ok(server.isRunning(), 'still running while a request is unfinished')
  t.ok(await isRefused(server.port), 'new connections are refused')
  const answer = await held.finish()
  t.match(answer, /^HTTP\/1\.1 201 /, 'the held request completes with its real answer')
  const statuses = (await Promise.all(signIns)).map((response) => response.status)
  t.same(statuses, [200, 200, 200, 200], 'sign-ins in flight complete')

  const { code, signal } = await server.exited
  const ms = performance.now() - signalledAt
  t.equal(code, 0, 'exit code 0')
  t.equal(signal, null)
  t.ok(ms < 10_000, `exited ${Math.round(ms)} ms after the signal, inside the 10 s grace`)
  t.match(server.output(), /shutting down/, 'said why it stopped')
  t.notMatch(server.output(), /"level":(50|60)/, 'no error logged on the way out')
  if (databaseUrl !== undefined) t.equal(await backendsOn(databaseUrl), 0, 'no connection left on the database')

  // What it acknowledged is there on the next start.
  const again = await startServer(env)
  t.teardown(() => killServer(again))
  const lateUser = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { user: { username: string } }
  const login = await new HttpClient(again.url).request('POST', '/api/auth/login', { username: lateUser.user.username, password: STRONG_PASSWORD })
  t.equal(login.status, 200, 'the registration finished during shutdown was kept')
  again.child.kill('SIGTERM')
  t.equal((await again.exited).code, 0, 'an idle server exits 0 too')
})

t.test('a second signal forces the exit at once', async (t) => {
  const server = await startServer(env)
  t.teardown(() => killServer(server))
  // Never finished: without a second signal, shutdown would wait out the whole grace period.
  const received = countInOutput(server, INCOMING)
  const held = await holdRequestOpen(server.port, '/api/auth/register', { username: uniqueName('stuck'), password: STRONG_PASSWORD })
  await waitForOutput(server, INCOMING, received + 1)
  server.child.kill('SIGTERM')
  await stoppedListening(server)
  t.ok(server.isRunning(), 'the first signal waits for the request in flight')
  const secondAt = performance.now()
  server.child.kill('SIGTERM')
  const { code } = await server.exited
  const ms = performance.now() - secondAt
  t.ok(ms < 2000, `exited ${Math.round(ms)} ms after the second signal`)
  t.not(code, 0, 'a forced exit is not a clean one')
  held.socket.destroy()
})
