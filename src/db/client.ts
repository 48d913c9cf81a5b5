import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { PGlite } from '@electric-sql/pglite'
import { sql } from 'drizzle-orm'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator'
import postgres from 'postgres'
import { context as otelContext } from '@opentelemetry/api'
import { assertPrivateDataDir } from '../config.js'
import { projectRoot } from '../paths.js'
import { QUERY_DEADLINE_MS, STATEMENT_TIMEOUT_MS, withDeadlines } from './deadlines.js'
import { lockDataDir } from './data-dir-lock.js'
import * as schema from './schema.js'
import { SILENCE_DEADLINE_MS, watchableTarget, watchedSocket } from './silence-watchdog.js'
import { DatabaseTelemetry } from './telemetry.js'

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
  /** Named prepared statements; false behind a transaction-mode pooler (PgBouncer). Default true. */
  readonly prepare?: boolean
  /** An embedded database in memory starts from this dump (PGlite's `dumpDataDir`) instead of an
   * empty one: the tests load one migrated dump rather than initialise and migrate each time. */
  readonly loadDataDir?: Blob
}

// Any constant works: it only has to be the same in every instance that migrates this database.
const MIGRATION_LOCK_ID = 7_310_442_019

export const migrationsFolder = () => join(projectRoot(), 'drizzle')

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
 * The audit log is append-only for every role but its owner: whatever grants a migration (or the
 * default privileges of deploy/db/roles.sql) gave, no other role may update, delete or truncate its
 * rows. Run by the migrating role (the owner) after each migration, so it stays true across them.
 */
async function keepAuditAppendOnly (client: postgres.Sql): Promise<void> {
  const grantees = await client<Array<{ grantee: string }>>`
    select distinct grantee from information_schema.role_table_grants
    where table_schema = 'public' and table_name = 'audit_events'
      and privilege_type in ('UPDATE', 'DELETE', 'TRUNCATE')
      and grantee <> (select pg_get_userbyid(relowner) from pg_class where oid = 'public.audit_events'::regclass)`
  for (const { grantee } of grantees) {
    await client.unsafe(`revoke update, delete, truncate on table public.audit_events from ${grantee === 'PUBLIC' ? 'public' : `"${grantee.replaceAll('"', '""')}"`}`)
  }
}

function openPostgres (url: string, poolSize: number, prepare: boolean): Database {
  const target = watchableTarget(url)
  const client = postgres(url, {
    max: poolSize,
    // Off, every statement goes out unnamed (parse, bind, execute in one batch), which a pooler that
    // hands each transaction a different server connection can carry.
    prepare,
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
        await keepAuditAppendOnly(lockClient)
        await lockClient`select pg_advisory_unlock(${MIGRATION_LOCK_ID})`
      } finally {
        await lockClient.end({ timeout: 5 })
      }
    },
    async close () { await client.end({ timeout: 5 }) },
  }
}

async function openEmbedded (dataDir: string, loadDataDir: Blob | undefined): Promise<Database> {
  const inMemory = dataDir.startsWith('memory://')
  if (!inMemory) {
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    assertPrivateDataDir(dataDir)
  }
  // One process at a time (see lockDataDir): a second one refuses here, before it reads anything.
  const unlock = inMemory ? () => {} : lockDataDir(dataDir)
  // Loaded only here: a server on Postgres never holds PGlite's code (about 15 MiB of memory).
  const [{ PGlite }, { drizzle: drizzlePglite }, { migrate: migratePglite }] = await Promise.all([
    import('@electric-sql/pglite'), import('drizzle-orm/pglite'), import('drizzle-orm/pglite/migrator'),
  ])
  let client: PGlite
  try {
    // A dump is only loaded into memory: a data directory on disk keeps what it holds.
    client = inMemory
      ? await PGlite.create(loadDataDir === undefined ? {} : { loadDataDir })
      : await PGlite.create(join(dataDir, 'pglite'))
  } catch (error) {
    unlock()
    throw error
  }
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
    async close () {
      try {
        await client.close()
      } finally {
        unlock()
      }
    },
  }
}

export async function openDatabase (options: DatabaseOptions): Promise<Database> {
  if (options.databaseUrl !== undefined) return openPostgres(options.databaseUrl, options.poolSize ?? 10, options.prepare ?? true)
  return openEmbedded(options.dataDir, options.loadDataDir)
}
