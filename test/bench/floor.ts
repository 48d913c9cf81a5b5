// The floor of the benchmark: a bare Fastify + postgres.js server answering the routes the benchmark
// drives, with the SQL the API runs (as Drizzle generates it) and nothing else: no auth, no
// validation, no hooks, no response schemas, no logging. The caller is the one user named by
// FLOOR_USER_ID (and FLOOR_SESSION_ID for /me), trusted blindly. Never deploy this.
//
//   DATABASE_URL=postgres://… PORT=… FLOOR_USER_ID=… FLOOR_SESSION_ID=… node --import tsx test/bench/floor.ts
import { verify } from '@node-rs/argon2'
import Fastify from 'fastify'
import postgres from 'postgres'

const env = process.env
const databaseUrl = env.DATABASE_URL
const userId = env.FLOOR_USER_ID
const sessionId = env.FLOOR_SESSION_ID
if (databaseUrl === undefined || userId === undefined || sessionId === undefined) {
  console.error('floor: DATABASE_URL, FLOOR_USER_ID and FLOOR_SESSION_ID are required')
  process.exit(1)
}
const PAGE = 20

// Tagged templates are prepared statements by default in postgres.js. The pool has the API's
// default size, so the two servers differ only by what the API does on top.
const sql = postgres(databaseUrl, {
  max: Number(env.FLOOR_POOL_SIZE ?? 10),
  // The API's response field names (ownerId, createdAt…) without changing the SQL.
  transform: { column: { from: postgres.toCamel } },
  onnotice: () => {},
})

interface TaskRow { id: string, createdAt: Date }

const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 })

app.get('/api/health', async () => ({ status: 'ok' }))

// `limit` is the page + 1, as in the API: the extra row only says whether there is a next page.
app.get('/api/tasks', async () => {
  const rows = await sql<TaskRow[]>`select "id", "title", "description", "done", "owner_id", "created_at", "updated_at" from "tasks" where "tasks"."owner_id" = ${userId} order by "tasks"."created_at" desc, "tasks"."id" desc limit ${PAGE + 1}`
  const items = rows.slice(0, PAGE)
  const last = items.at(-1)
  return {
    items,
    nextCursor: rows.length > PAGE && last !== undefined
      ? Buffer.from(`${last.createdAt.toISOString()}|${last.id}`).toString('base64url')
      : null,
  }
})

app.post('/api/tasks', async (request, reply) => {
  const body = request.body as { title: string, description?: string, done?: boolean }
  const [task] = await sql`insert into "tasks" ("id", "owner_id", "title", "description", "done", "created_at", "updated_at") values (default, ${userId}, ${body.title}, ${body.description ?? ''}, ${body.done ?? false}, default, default) returning "id", "title", "description", "done", "owner_id", "created_at", "updated_at"`
  return reply.code(201).send({ task })
})

// The API's /me is exactly its session + user query; the floor runs the same one for a fixed session.
app.get('/api/auth/me', async () => {
  const [user] = await sql`select "users"."id", "users"."username", "users"."role", "users"."created_at", "sessions"."id" from "sessions" inner join "users" on "users"."id" = "sessions"."user_id" where ("sessions"."id" = ${sessionId} and "sessions"."user_id" = ${userId} and ("sessions"."revoked_at" is null and "sessions"."expires_at" > now() and "sessions"."absolute_expires_at" > now()))`
  return { user }
})

// The API's sign-in work without its checks: find the user, verify the password with argon2 (on
// libuv's pool, as the API does), then the session, refresh token and audit rows in one transaction.
// No JWT, no cookies.
app.post('/api/auth/login', async (request, reply) => {
  const { username, password } = request.body as { username: string, password: string }
  const [user] = await sql<Array<{ id: string, username: string, role: string, createdAt: Date, passwordHash: string }>>`select "id", "username", "role", "created_at", "password_hash" from "users" where lower("users"."username") = ${username.toLowerCase()}`
  if (user === undefined || !await verify(user.passwordHash, password)) return reply.code(401).send({ statusCode: 401 })
  const now = Date.now()
  await sql.begin(async (tx) => {
    const [session] = await tx<Array<{ id: string }>>`insert into "sessions" ("id", "user_id", "created_at", "last_used_at", "expires_at", "absolute_expires_at", "revoked_at", "user_agent", "ip") values (default, ${user.id}, default, default, ${new Date(now + 1_209_600_000)}, ${new Date(now + 2_592_000_000)}, default, ${null}, ${request.ip}) returning "id"`
    await tx`insert into "refresh_tokens" ("token_hash", "session_id", "created_at", "replaced_at") values (${`floor-${session!.id}`}, ${session!.id}, default, default)`
    await tx`insert into "audit_events" ("id", "at", "type", "user_id", "actor_id", "ip", "detail") values (default, default, ${'login'}, ${user.id}, ${user.id}, ${request.ip}, ${tx.json({ sessionId: session!.id })}) returning "id"`
  })
  const { passwordHash: _hash, ...visible } = user
  return { user: visible }
})

const stop = async () => {
  await app.close()
  await sql.end({ timeout: 2 })
  process.exit(0)
}
process.once('SIGTERM', () => { stop().catch(() => process.exit(1)) })
process.once('SIGINT', () => { stop().catch(() => process.exit(1)) })

await app.listen({ port: Number(env.PORT ?? 0), host: env.HOST ?? '127.0.0.1' })
// The runner waits for this line.
console.log(JSON.stringify({ floor: 'listening', port: (app.server.address() as { port: number }).port }))
