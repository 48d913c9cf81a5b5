// The API behind Debian's PgBouncer (1.18) in transaction mode, the usual pooler in front of
// Postgres past one machine. Named prepared statements cannot survive there (each transaction may
// get another server connection), so DATABASE_PREPARE=false sends every statement unnamed. This
// file proves the real task and auth routes work that way under concurrency, with a server pool
// smaller than the API's, and that the default (prepared) really does break there.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { openDatabase } from '../src/db/client.js'
import { cookiesFrom, freshDatabaseUrl, testConfig, uniqueName, STRONG_PASSWORD, type Cookies } from './helpers/app.js'
import { pgbouncerBinary, startPgBouncer, type PgBouncer } from './helpers/pgbouncer.js'
import { toolSkip } from './helpers/tools.js'

const POOL_SIZE = 2 // PgBouncer's server connections: fewer than the API's 10
const USERS = 4
const ROUNDS = 6

const serverUrl = process.env.TEST_DATABASE_URL
if (serverUrl === undefined || serverUrl === '') {
  t.comment('runs in the Postgres pass only (TEST_DATABASE_URL): a pooler sits in front of a Postgres server')
  t.pass('nothing to pool without a Postgres server')
} else if (pgbouncerBinary() === undefined) {
  t.test('the API behind PgBouncer', { skip: toolSkip(t, 'pgbouncer', false, 'apt-get install pgbouncer; .ci/run does it') }, async () => {})
} else {
  await main(serverUrl)
}

async function appBehind (bouncer: PgBouncer, databaseUrl: string, prepare: boolean): Promise<FastifyInstance> {
  const app = await buildApp({
    config: testConfig({ databaseUrl: bouncer.urlFor(databaseUrl), databasePrepare: prepare, migrateOnStart: false }),
    pressure: { maxEventLoopDelay: 0 },
  })
  await app.ready()
  return app
}

interface Client { cookies: Cookies }

async function registerAndSignIn (app: FastifyInstance): Promise<Client> {
  const username = uniqueName('pool')
  const registered = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username, password: STRONG_PASSWORD } })
  if (registered.statusCode !== 201) throw new Error(`register: ${registered.statusCode} ${registered.body}`)
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password: STRONG_PASSWORD } })
  if (login.statusCode !== 200) throw new Error(`login: ${login.statusCode} ${login.body}`)
  return { cookies: cookiesFrom(login) }
}

/** One user's round of everything a signed-in browser does; returns each answer's status. */
async function round (app: FastifyInstance, client: Client, i: number): Promise<number[]> {
  const statuses: number[] = []
  const created = await app.inject({ method: 'POST', url: '/api/tasks', cookies: client.cookies, payload: { title: `task ${i}` } })
  statuses.push(created.statusCode)
  const id = created.statusCode === 201 ? created.json().task.id as string : '00000000-0000-4000-8000-000000000000'
  const answers = await Promise.all([
    app.inject({ method: 'GET', url: '/api/tasks?limit=5', cookies: client.cookies }),
    app.inject({ method: 'GET', url: `/api/tasks/${id}`, cookies: client.cookies }),
    app.inject({ method: 'PATCH', url: `/api/tasks/${id}`, cookies: client.cookies, payload: { done: true } }),
    app.inject({ method: 'GET', url: '/api/auth/me', cookies: client.cookies }),
    app.inject({ method: 'GET', url: '/api/auth/sessions', cookies: client.cookies }),
  ])
  statuses.push(...answers.map((answer) => answer.statusCode))
  const refreshed = await app.inject({ method: 'POST', url: '/api/auth/refresh', cookies: client.cookies })
  statuses.push(refreshed.statusCode)
  if (refreshed.statusCode === 200) client.cookies = cookiesFrom(refreshed, client.cookies)
  const removed = await app.inject({ method: 'DELETE', url: `/api/tasks/${id}`, cookies: client.cookies })
  statuses.push(removed.statusCode)
  return statuses
}

async function main (server: string) {
  const databaseUrl = (await freshDatabaseUrl(t))!
  // Migrations take a session-level advisory lock, which a transaction pooler cannot hold for them:
  // they run against Postgres directly (README: "Behind PgBouncer").
  const direct = await openDatabase({ databaseUrl, dataDir: 'memory://' })
  await direct.migrate()
  await direct.close()

  const upstream = new URL(server)
  const bouncer = await startPgBouncer({ host: upstream.hostname, port: Number(upstream.port || 5432) }, POOL_SIZE)
  t.teardown(() => bouncer.stop())

  t.test('with DATABASE_PREPARE=false every route works through the pooler under concurrency', async (t) => {
    const app = await appBehind(bouncer, databaseUrl, false)
    t.teardown(() => app.close())
    const clients = await Promise.all(Array.from({ length: USERS }, () => registerAndSignIn(app)))
    const statuses: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      const rounds = await Promise.all(clients.map((client) => round(app, client, i)))
      statuses.push(...rounds.flat())
    }
    const failures = statuses.filter((status) => status >= 300)
    t.equal(statuses.length, USERS * ROUNDS * 8, 'every request answered (no hang)')
    t.same(failures, [], 'no request failed')
    const logout = await app.inject({ method: 'POST', url: '/api/auth/logout', cookies: clients[0]!.cookies })
    t.equal(logout.statusCode, 204)
    const after = await app.inject({ method: 'GET', url: '/api/auth/me', cookies: clients[0]!.cookies })
    t.equal(after.statusCode, 401, 'a revoked session is refused through the pooler too')
  })

  t.test('with named prepared statements (the default) the same pooler breaks requests', async (t) => {
    const app = await appBehind(bouncer, databaseUrl, true)
    t.teardown(() => app.close())
    const clients: Client[] = []
    const statuses: number[] = []
    for (let i = 0; i < USERS; i++) {
      try {
        clients.push(await registerAndSignIn(app))
      } catch {
        statuses.push(500)
      }
    }
    for (let i = 0; i < ROUNDS && clients.length > 0; i++) {
      const rounds = await Promise.all(clients.map((client) => round(app, client, i)))
      statuses.push(...rounds.flat())
    }
    t.ok(statuses.some((status) => status >= 500), 'some requests fail: DATABASE_PREPARE=false is needed there')
  })
}
