import { context as otelContext } from '@opentelemetry/api'
import type { DatabaseTelemetry, Settle } from './telemetry.js'

// Client-side deadlines. A database that refuses or drops connections fails fast by itself; one
// behind a black-holed link never answers at all, and neither connect_timeout nor statement_timeout
// notices (the server never sees the query, so it cannot time it out). So: Postgres cancels a statement
// after STATEMENT_TIMEOUT_MS, and the client destroys a connection whose server has owed it an answer
// and stayed silent for SILENCE_DEADLINE_MS (silence-watchdog.ts), a little longer, so that only a
// dead link reaches it. The pool then opens a fresh connection. Both sit under API.md's "503 within 2 s".
export const STATEMENT_TIMEOUT_MS = 1200
// And each query, from the moment it is asked for, gets this long in all, waiting for a connection
// included: postgres.js queues without a bound when every connection is busy or connecting. A query
// still queued at the deadline is taken out of the queue; one already sent is left to the watchdog.
export const QUERY_DEADLINE_MS = 1600

// This file leans on postgres.js internals, checked against postgres 3.4.9 (package.json: ^3.4.9):
// a query is a lazy promise sent on its first then(), with cancel() and a `state` set once sent, and
// Drizzle reaches the client only through `unsafe`, `begin` and `savepoint`. Re-check on upgrades
// (test/reliability-database-faults.test.ts fails if they change).

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
export function withDeadlines<S extends object> (sql: S, ms: number, telemetry: DatabaseTelemetry, inTransaction = false): S {
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
