import { context, SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api'
import type { PoolStats } from '../metrics.js'

/** What is called when a statement (or a transaction) ends: with its error, or undefined. */
export type Settle = (error: unknown) => void

// Drizzle writes a bounded set of statements, yet IN-lists of varying length make new texts: the cache
// of summaries stops growing here rather than holding every text ever seen.
const SUMMARY_CACHE_LIMIT = 1000
const summaries = new Map<string, { name: string, operation: string, collection: string | undefined }>()

/**
 * The table of a SELECT's own FROM, not of a subquery before it (the user columns carry `exists
 * (select 1 from "passkeys" …)`): the first `from` outside any parentheses.
 */
function fromAtTopLevel (text: string): RegExpExecArray | null {
  // One pass: the parentheses before each match are counted from where the last count stopped.
  let depth = 0
  let counted = 0
  for (const match of text.matchAll(/\bfrom\s+"?([\w.]+)"?/gi)) {
    for (; counted < match.index; counted++) {
      if (text[counted] === '(') depth++
      else if (text[counted] === ')') depth--
    }
    if (depth === 0) return match as RegExpExecArray
  }
  return null
}

/**
 * The statement's name in OpenTelemetry's terms (`SELECT sessions`, `INSERT refresh_tokens`): the
 * operation and the first table, read from the SQL text. Parameters travel separately (`$1`), and
 * this reads only the text, so no value can reach a span.
 */
export function statementSummary (text: string): { name: string, operation: string, collection: string | undefined } {
  const cached = summaries.get(text)
  if (cached !== undefined) return cached
  const operation = (/^\s*([a-z]+)/i.exec(text)?.[1] ?? 'query').toUpperCase()
  const table = operation === 'INSERT'
    ? /^\s*insert\s+into\s+"?([\w.]+)"?/i.exec(text)
    : operation === 'UPDATE'
      ? /^\s*update\s+"?([\w.]+)"?/i.exec(text)
      : fromAtTopLevel(text)
  const collection = table?.[1]
  const summary = { name: collection === undefined ? operation : `${operation} ${collection}`, operation, collection }
  if (summaries.size < SUMMARY_CACHE_LIMIT) summaries.set(text, summary)
  return summary
}

/**
 * What the database layer reports about itself: how many connections are taken and wanted (for the
 * pool gauges), and, when tracing is on, a span per statement and per transaction. With tracing off
 * the cost is two integer updates and a branch per statement.
 */
export class DatabaseTelemetry {
  private tracer: Tracer | undefined
  /** Statements outside a transaction, and transactions, asked for and not yet finished. */
  private holders = 0

  constructor (private readonly poolSize: number) {}

  useTracer (tracer: Tracer | undefined): void {
    this.tracer = tracer
  }

  poolStats (): PoolStats {
    // The pool serves at most `poolSize` holders at once; the rest wait, queued in the driver or
    // pipelined behind another statement on a busy connection.
    return { size: this.poolSize, inUse: Math.min(this.holders, this.poolSize), waiting: Math.max(0, this.holders - this.poolSize) }
  }

  /** A statement about to be sent: `holdsConnection` when it is not part of a transaction. */
  statement (text: string, holdsConnection: boolean): Settle | undefined {
    if (holdsConnection) this.holders += 1
    const tracer = this.tracer
    if (tracer === undefined) return holdsConnection ? once(this.release) : undefined
    const summary = statementSummary(text)
    const span = tracer.startSpan(summary.name, {
      kind: SpanKind.CLIENT,
      attributes: {
        'db.system.name': 'postgresql',
        'db.operation.name': summary.operation,
        ...(summary.collection === undefined ? {} : { 'db.collection.name': summary.collection }),
      },
    })
    return once((error) => {
      if (holdsConnection) this.holders -= 1
      endSpan(span, error)
    })
  }

  /**
   * A transaction about to ask for its connection. `context` is what its body must run in: the drivers
   * call the body from their own callbacks, where the request's context is lost.
   */
  transaction (): { settle: Settle, context: Context | undefined } {
    this.holders += 1
    const tracer = this.tracer
    if (tracer === undefined) return { settle: once(this.release), context: undefined }
    const span = tracer.startSpan('transaction', { kind: SpanKind.CLIENT, attributes: { 'db.system.name': 'postgresql' } })
    return {
      settle: once((error) => {
        this.holders -= 1
        endSpan(span, error)
      }),
      context: trace.setSpan(context.active(), span),
    }
  }

  private readonly release: Settle = () => { this.holders -= 1 }
}

/**
 * Settles count once: the deadline settles a statement it gives up on (so that one the driver never
 * answers cannot hold the gauge up for ever), and the driver's late answer is then ignored.
 */
function once (settle: Settle): Settle {
  let isSettled = false
  return (error) => {
    if (isSettled) return
    isSettled = true
    settle(error)
  }
}

function endSpan (span: Span, error: unknown) {
  if (error !== undefined) {
    // The error's code only (a SQLSTATE or a driver code): its message may quote the statement's values.
    const code = (error as { code?: unknown }).code
    span.setStatus({ code: SpanStatusCode.ERROR })
    if (typeof code === 'string') span.setAttribute('error.type', code)
  }
  span.end()
}
