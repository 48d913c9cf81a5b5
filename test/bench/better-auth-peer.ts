// The benchmark's second peer: what a TypeScript team would likely build instead of this API —
// better-auth on Fastify with Postgres (its built-in adapter over `pg`), e-mail + password
// sign-in, sessions in the database with no cookie cache (so a revoked session is refused on the
// next request, as ours is). The task routes run the floor's SQL behind `auth.api.getSession`.
// Its own tables (`user`, `session`, `account`, `verification`) and `ba_tasks` live beside ours
// in the benchmark's throwaway database. Never deploy this.
//
//   DATABASE_URL=postgres://… PORT=… BETTER_AUTH_SECRET=… node --import tsx test/bench/better-auth-peer.ts
import { betterAuth } from 'better-auth'
import { getMigrations } from 'better-auth/db/migration'
import { fromNodeHeaders } from 'better-auth/node'
import Fastify, { type FastifyRequest } from 'fastify'
import pg from 'pg'

const env = process.env
const databaseUrl = env.DATABASE_URL
const secret = env.BETTER_AUTH_SECRET
if (databaseUrl === undefined || secret === undefined) {
  console.error('better-auth peer: DATABASE_URL and BETTER_AUTH_SECRET are required')
  process.exit(1)
}
const PAGE = 20
const port = Number(env.PORT ?? 0)
const origin = env.BENCH_ORIGIN ?? 'http://localhost:4100'

// The same pool size as the API and the floor.
const pool = new pg.Pool({ connectionString: databaseUrl, max: Number(env.POOL_SIZE ?? 10) })

const auth = betterAuth({
  database: pool,
  secret,
  baseURL: `http://127.0.0.1:${port}`,
  basePath: '/api/auth',
  trustedOrigins: [origin],
  emailAndPassword: { enabled: true, minPasswordLength: 8 },
  // Every request asks the database, like ours: no signed cookie cache that would outlive a revocation.
  session: { cookieCache: { enabled: false } },
  // The benchmark drives logins from one address; ours allowlists it, so this one goes unlimited.
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
})

const { runMigrations } = await getMigrations(auth.options)
await runMigrations()
await pool.query(`create table if not exists ba_tasks (
  id uuid primary key default gen_random_uuid(),
  owner_id text not null,
  title text not null,
  description text not null default '',
  done boolean not null default false,
  created_at timestamptz(3) not null default now(),
  updated_at timestamptz(3) not null default now()
)`)
await pool.query('create index if not exists ba_tasks_owner_created_id_idx on ba_tasks (owner_id, created_at desc, id desc)')

const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 })

app.get('/api/health', async () => ({ status: 'ok' }))

/** The signed-in user's id, from better-auth's session lookup (one database read per request). */
async function userIdOf (request: FastifyRequest): Promise<string | undefined> {
  const session = await auth.api.getSession({ headers: fromNodeHeaders(request.headers) })
  return session?.user.id
}

// better-auth's own routes (sign-up, sign-in, get-session…) through its web handler.
app.route({
  method: ['GET', 'POST'],
  url: '/api/auth/*',
  async handler (request, reply) {
    const url = new URL(request.url, `http://${request.headers.host ?? '127.0.0.1'}`)
    const answer = await auth.handler(new Request(url, {
      method: request.method,
      headers: fromNodeHeaders(request.headers),
      ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
    }))
    reply.status(answer.status)
    answer.headers.forEach((value, name) => { if (name !== 'set-cookie') reply.header(name, value) })
    const cookies = answer.headers.getSetCookie()
    if (cookies.length > 0) reply.header('set-cookie', cookies)
    return reply.send(answer.body === null ? null : await answer.text())
  },
})

interface TaskRow { id: string, created_at: Date }

app.get('/api/tasks', async (request, reply) => {
  const userId = await userIdOf(request)
  if (userId === undefined) return reply.code(401).send({ statusCode: 401 })
  const { rows } = await pool.query<TaskRow>({
    name: 'ba_tasks_first_page',
    text: 'select id, title, description, done, owner_id, created_at, updated_at from ba_tasks where owner_id = $1 order by created_at desc, id desc limit $2',
    values: [userId, PAGE + 1],
  })
  const items = rows.slice(0, PAGE)
  const last = items.at(-1)
  return {
    items,
    nextCursor: rows.length > PAGE && last !== undefined
      ? Buffer.from(`${last.created_at.toISOString()}|${last.id}`).toString('base64url')
      : null,
  }
})

app.post('/api/tasks', async (request, reply) => {
  const userId = await userIdOf(request)
  if (userId === undefined) return reply.code(401).send({ statusCode: 401 })
  const body = request.body as { title: string, description?: string, done?: boolean }
  const { rows } = await pool.query({
    name: 'ba_tasks_insert',
    text: 'insert into ba_tasks (owner_id, title, description, done) values ($1, $2, $3, $4) returning id, title, description, done, owner_id, created_at, updated_at',
    values: [userId, body.title, body.description ?? '', body.done ?? false],
  })
  return reply.code(201).send({ task: rows[0] })
})

const stop = async () => {
  await app.close()
  await pool.end()
  process.exit(0)
}
process.once('SIGTERM', () => { stop().catch(() => process.exit(1)) })
process.once('SIGINT', () => { stop().catch(() => process.exit(1)) })

await app.listen({ port, host: env.HOST ?? '127.0.0.1' })
console.log(JSON.stringify({ betterAuth: 'listening', port }))
