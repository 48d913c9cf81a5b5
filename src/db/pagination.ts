import { sql, type AnyColumn, type SQL } from 'drizzle-orm'
import { BadCursor } from '../errors.js'
import { isUuid } from '../rules.js'

/** Where a newest-first page ended: the last row's timestamp and id (the tie-breaker). */
export interface Cursor { at: Date, id: string }

// Opaque to clients (base64url), but not secret: it holds only what the page already showed.
export function encodeCursor (cursor: Cursor): string {
  return Buffer.from(`${cursor.at.toISOString()}|${cursor.id}`).toString('base64url')
}

export function decodeCursor (encoded: string): Cursor {
  const [at, id, ...rest] = Buffer.from(encoded, 'base64url').toString('utf8').split('|')
  const date = new Date(at ?? '')
  if (rest.length > 0 || id === undefined || !isUuid(id) || Number.isNaN(date.getTime())) throw new BadCursor()
  // JavaScript dates reach year 275760, Postgres's text input only 4-digit years: a cursor the API
  // issued never holds another (a forged one used to be a 500).
  const year = date.getUTCFullYear()
  if (year < 1 || year > 9999) throw new BadCursor()
  return { at: date, id }
}

/**
 * The keyset condition of every newest-first list: rows strictly older than the cursor, ties on the
 * timestamp broken by id. `at` and `id` are values, or placeholders in a prepared statement.
 */
export function olderThan (atColumn: AnyColumn, idColumn: AnyColumn, at: unknown, id: unknown): SQL {
  return sql`(${atColumn}, ${idColumn}) < (${at}::timestamptz, ${id}::uuid)`
}

/** Rows were fetched with limit + 1: the extra one only tells whether another page exists. */
export function toPage<Row> (rows: Row[], limit: number, cursorOf: (row: Row) => Cursor) {
  const items = rows.slice(0, limit)
  const last = items.at(-1)
  return { items, nextCursor: rows.length > limit && last !== undefined ? encodeCursor(cursorOf(last)) : null }
}
