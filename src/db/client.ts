import { mkdir } from 'node:fs/promises'
import { connect as netConnect, type Socket } from 'node:net'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { sql } from 'drizzle-orm'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator'
import postgres from 'postgres'
import { context as otelContext } from '@opentelemetry/api'
import { projectRoot } from '../paths.js'
import * as schema from './schema.js'
import { DatabaseTelemetry, type Settle } from './telemetry.js'

/** One type for both drivers: the query builder is the same, only the wire differs. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>

export interface Database {
  readonly db: Db
  readonly kind: 'postgres' | 'embedded'
  /** Pool use for the metrics, and a span per statement when a tracer is set. */
  readonly telemetry: DatabaseTelemetry
  /** Resolves when the database answers a trivial query. */
  ping (): Promise<void>
  /** Applies pending migrations; safe to call from several instances at once. */
  migrate (): Promise<void>
  close (): Promise<void>
}

export interface DatabaseOptions {
  readonly databaseUrl: string | undefined
  readonly dataDir: string
  /** Pool size for postgres.js; ignored by the embedded database (one connection by nature). */
  readonly poolSize?: number
}

// Any constant works: it only has to be the same in every instance that migrates this database.
const MIGRATION_LOCK_ID = 7_310_442_019

export const migrationsFolder = () => join(projectRoot(), 'drizzle')

// Client-side deadlines. A database that refuses or drops connections fails fast by itself; one
// behind a black-holed link never answers at all, and neither connect_timeout nor statement_timeout
// notices (the server never sees the query, so it cannot time it out). So: Postgres cancels a statement
// after STATEMENT_TIMEOUT_MS, and the client destroys a connection whose server has owed it an answer
// and stayed silent for SILENCE_DEADLINE_MS, a little longer, so that only a dead link reaches it. The
// pool then opens a fresh connection. Both sit under API.md's "503 within 2 s".
export const STATEMENT_TIMEOUT_MS = 1200
export const SILENCE_DEADLINE_MS = 1500
// And each query, from the moment it is asked for, gets this long in all, waiting for a connection
// included: postgres.js queues without a bound when every connection is busy or connecting. A query
// still queued at the deadline is taken out of the queue; one already sent is left to the watchdog.
export const QUERY_DEADLINE_MS = 1600

function queryTimeout (ms: number): Error {
  return Object.assign(new Error(`the database did not answer within ${ms} ms`), { code: 'QUERY_TIMEOUT' })
}

// postgres.js's query object: a lazy promise, sent on the first then(); `state` is set once sent.
interface PendingQuery { then: Promise<unknown>['then'], cancel: () => unknown, state?: unknown }

/**
 * Bounds a lazy postgres.js query by `ms`, and tells `watch` when it is sent for and when it ends. The
 * statement's span and its place in the pool count end with the answer, or with the deadline.
 */
function boundQuery<Q> (query: Q, ms: number, watch: () => Settle | undefined): Q {
  const pending = query as unknown as PendingQuery
  const then = pending.then.bind(pending)
  let bounded: Promise<unknown> | undefined
  pending.then = ((onFulfilled, onRejected) => {
    bounded ??= new Promise((resolve, reject) => {
      const settle = watch()
      const timer = setTimeout(() => {
        if (pending.state === undefined) pending.cancel()
        const timeout = queryTimeout(ms)
        settle?.(timeout)
        reject(timeout)
      }, ms)
      then((value) => {
        clearTimeout(timer)
        settle?.(undefined)
        resolve(value)
      }, (error: unknown) => {
        clearTimeout(timer)
        settle?.(error)
        reject(error)
      })
    })
    return bounded.then(onFulfilled, onRejected)
  }) as Promise<unknown>['then']
  return query
}

type Scoped = (...args: unknown[]) => Promise<unknown>

/**
 * The postgres.js client as Drizzle uses it (`unsafe` for every statement, `begin`/`savepoint` for
 * transactions), each statement bounded by `ms` and reported to `telemetry`. A transaction gets `ms`
 * to obtain its connection; its statements are bounded one by one.
 */
function withDeadlines<S extends object> (sql: S, ms: number, telemetry: DatabaseTelemetry, inTransaction = false): S {
  return new Proxy(sql, {
    get (target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown
      if (typeof value !== 'function') return value
      if (property === 'unsafe') {
        return (...args: unknown[]) => boundQuery((value as Scoped).apply(target, args), ms,
          () => telemetry.statement(String(args[0]), !inTransaction))
      }
      if (property !== 'begin' && property !== 'savepoint') return value
      return (...args: unknown[]) => {
        const body = args.pop() as (scoped: object) => unknown
        const watch = property === 'begin' ? telemetry.transaction() : undefined
        let isStarted = false
        let isAbandoned = false
        let timer: NodeJS.Timeout | undefined
        const acquired = new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => {
            if (isStarted) return
            isAbandoned = true
            const timeout = queryTimeout(ms)
            watch?.settle(timeout)
            reject(timeout)
          }, ms)
        })
        const run = (value as Scoped).apply(target, [...args, async (scoped: object) => {
          // Given up on while it waited: roll back at once rather than run late.
          if (isAbandoned) throw queryTimeout(ms)
          isStarted = true
          clearTimeout(timer)
          const scopedSql = withDeadlines(scoped, ms, telemetry, true)
          return watch?.context === undefined ? body(scopedSql) : otelContext.with(watch.context, () => body(scopedSql))
        }])
        run.then(() => watch?.settle(undefined), (error: unknown) => watch?.settle(error)).finally(() => clearTimeout(timer))
        return Promise.race([run, acquired])
      }
    },
  })
}

/**
 * The embedded client as Drizzle uses it (`query`, `exec`, `transaction`), each statement reported to
 * `telemetry`. PGlite runs one statement at a time on the event loop: no deadline would help.
 */
function withTelemetry (client: PGlite, telemetry: DatabaseTelemetry): PGlite {
  const watched = <T>(text: unknown, holdsConnection: boolean, run: () => Promise<T>): Promise<T> => {
    const settle = telemetry.statement(String(text), holdsConnection)
    if (settle === undefined) return run()
    return run().then((value) => { settle(undefined); return value }, (error: unknown) => { settle(error); throw error })
  }
  const scoped = <C extends object>(target: C, inTransaction: boolean): C => new Proxy(target, {
    get (inner, property) {
      const value = Reflect.get(inner, property, inner) as unknown
      if (typeof value !== 'function') return value
      const method = value as (...args: unknown[]) => Promise<unknown>
      if (property === 'query' || property === 'exec') {
        return (...args: unknown[]) => watched(args[0], !inTransaction, () => method.apply(inner, args))
      }
      if (property === 'transaction') {
        return async (body: (tx: object) => Promise<unknown>) => {
          const watch = telemetry.transaction()
          try {
            const result = await method.call(inner, (tx: object) => {
              const scopedTx = scoped(tx, true)
              return watch.context === undefined ? body(scopedTx) : otelContext.with(watch.context, () => body(scopedTx))
            })
            watch.settle(undefined)
            return result
          } catch (error) {
            watch.settle(error)
            throw error
          }
        }
      }
      // PGlite keeps its state in private fields: its methods must run on the instance itself.
      return method.bind(inner)
    },
  })
  return scoped(client, false)
}

/**
 * Counts the protocol messages in one direction of a Postgres connection (type byte + int32 length,
 * after an untyped startup message on the client side), reporting those whose type is in `types`.
 * Messages may arrive split over or packed into chunks; only headers are looked at.
 */
class MessageCounter {
  private skip = 0
  private header: number[] = []
  private untypedFirst: boolean
  constructor (private readonly types: ReadonlySet<number>, untypedFirst: boolean) { this.untypedFirst = untypedFirst }

  /** How many messages of the watched types start in this chunk. */
  feed (chunk: Uint8Array): number {
    let counted = 0
    let at = 0
    while (at < chunk.length) {
      if (this.skip > 0) {
        const step = Math.min(this.skip, chunk.length - at)
        this.skip -= step
        at += step
        continue
      }
      const headerLength = this.untypedFirst ? 4 : 5
      this.header.push(chunk[at]!)
      at += 1
      if (this.header.length < headerLength) continue
      const [a, b, c, d] = this.header.slice(headerLength - 4)
      const length = ((a! << 24) | (b! << 16) | (c! << 8) | d!) >>> 0
      if (this.untypedFirst) {
        counted += 1 // the startup message, answered by the first ReadyForQuery
        this.untypedFirst = false
      } else if (this.types.has(this.header[0]!)) {
        counted += 1
      }
      this.skip = Math.max(0, length - 4)
      this.header = []
    }
    return counted
  }
}

const QUERY = 0x51 // 'Q': simple query, answered by one ReadyForQuery
const SYNC = 0x53 // 'S': ends an extended-protocol batch, answered by one ReadyForQuery
const READY_FOR_QUERY = 0x5a // 'Z'

/**
 * A TCP connection to Postgres that destroys itself when the server owes it an answer (a ReadyForQuery
 * for each Query or Sync sent, and one for the startup) and has sent nothing for `deadlineMs`. The
 * pending queries then fail with QUERY_TIMEOUT (a 503), and postgres.js replaces the connection.
 */
export function watchedSocket (host: string, port: number, deadlineMs: number): Socket {
  const socket = netConnect({ host, port })
  const sent = new MessageCounter(new Set([QUERY, SYNC]), true)
  const received = new MessageCounter(new Set([READY_FOR_QUERY]), false)
  let owed = 0
  let timer: NodeJS.Timeout | undefined
  const expire = () => {
    socket.destroy(Object.assign(new Error(`the database sent nothing for ${deadlineMs} ms`), { code: 'QUERY_TIMEOUT' }))
  }
  // Restarts the clock: the server must say something within the deadline from now.
  const arm = () => {
    if (timer === undefined) {
      timer = setTimeout(expire, deadlineMs)
      timer.unref()
    } else {
      timer.refresh()
    }
  }
  const disarm = () => {
    clearTimeout(timer)
    timer = undefined
  }

  const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean
  socket.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (chunk instanceof Uint8Array) owed += sent.feed(chunk)
    if (owed > 0 && timer === undefined) arm()
    return write(chunk, ...rest)
  }) as Socket['write']
  socket.on('data', (chunk: Buffer) => {
    owed -= received.feed(chunk)
    if (owed > 0) arm()
    else disarm()
  })
  socket.once('close', disarm)
  return socket
}

/** The watchdog parses the plain protocol: with TLS, or several hosts, postgres.js connects by itself. */
function watchableTarget (url: string): { host: string, port: number } | undefined {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return undefined // several hosts: not a WHATWG URL
  }
  if (parsed.searchParams.has('host')) return undefined // a Unix socket
  const sslmode = parsed.searchParams.get('sslmode') ?? parsed.searchParams.get('ssl')
  if (sslmode !== null && sslmode !== 'disable' && sslmode !== 'false') return undefined
  if (parsed.hostname === '' || parsed.host.includes(',')) return undefined
  return { host: decodeURIComponent(parsed.hostname).replace(/^\[|\]$/g, ''), port: parsed.port === '' ? 5432 : Number(parsed.port) }
}

function openPostgres (url: string, poolSize: number): Database {
  const target = watchableTarget(url)
  const client = postgres(url, {
    max: poolSize,
    // A dead or unreachable database must turn into a fast 503, not a hung request.
    connect_timeout: SILENCE_DEADLINE_MS / 1000,
    idle_timeout: 60,
    // postgres.js backs off up to 20 s between failed reconnects by default; cap it so the API heals
    // within a second of the database coming back.
    backoff: () => 0.25,
    // Runaway statements and lock waits are cut server-side before the client's own deadline.
    connection: { statement_timeout: STATEMENT_TIMEOUT_MS, idle_in_transaction_session_timeout: 10_000 },
    ...(target === undefined ? {} : { socket: () => watchedSocket(target.host, target.port, SILENCE_DEADLINE_MS) }),
    onnotice: () => {},
  })
  const telemetry = new DatabaseTelemetry(poolSize)
  const db = drizzlePostgres({ client: withDeadlines(client, QUERY_DEADLINE_MS, telemetry), schema })
  return {
    db,
    kind: 'postgres',
    telemetry,
    async ping () { await db.execute(sql`select 1`) },
    async migrate () {
      // One connection, so the advisory lock and the migration share a session: two instances
      // starting together run the migrations once, the second waiting for the first.
      const lockClient = postgres(url, { max: 1, connect_timeout: 10, onnotice: () => {} })
      try {
        await lockClient`select pg_advisory_lock(${MIGRATION_LOCK_ID})`
        await migratePostgres(drizzlePostgres({ client: lockClient }), { migrationsFolder: migrationsFolder() })
        await lockClient`select pg_advisory_unlock(${MIGRATION_LOCK_ID})`
      } finally {
        await lockClient.end({ timeout: 5 })
      }
    },
    async close () { await client.end({ timeout: 5 }) },
  }
}

async function openEmbedded (dataDir: string): Promise<Database> {
  const inMemory = dataDir.startsWith('memory://')
  if (!inMemory) await mkdir(dataDir, { recursive: true })
  const client = await PGlite.create(inMemory ? undefined : join(dataDir, 'pglite'))
  // One connection by nature: a second statement waits for the first.
  const telemetry = new DatabaseTelemetry(1)
  const db = drizzlePglite({ client: withTelemetry(client, telemetry), schema })
  return {
    db,
    kind: 'embedded',
    telemetry,
    async ping () { await db.execute(sql`select 1`) },
    // PGlite is a single connection in a single process: nothing else can migrate at the same time.
    async migrate () { await migratePglite(db, { migrationsFolder: migrationsFolder() }) },
    async close () { await client.close() },
  }
}

export async function openDatabase (options: DatabaseOptions): Promise<Database> {
  if (options.databaseUrl !== undefined) return openPostgres(options.databaseUrl, options.poolSize ?? 10)
  return openEmbedded(options.dataDir)
}
