import { and, desc, eq, sql } from 'drizzle-orm'
import type { Db } from '../client.js'
import { tasks } from '../schema.js'
import { decodeCursor, toPage } from '../pagination.js'

export const publicTask = {
  id: tasks.id,
  title: tasks.title,
  description: tasks.description,
  done: tasks.done,
  ownerId: tasks.ownerId,
  createdAt: tasks.createdAt,
  updatedAt: tasks.updatedAt,
}

export interface TaskChanges { title?: string, description?: string, done?: boolean }

/**
 * Every task query names its owner in the WHERE clause: another user's task is simply not found,
 * indistinguishable from one that never existed. The queries are prepared once per database, so
 * Postgres parses and plans each of them once per connection, not once per request.
 */
export function prepareTaskQueries (db: Db) {
  const ownedBy = eq(tasks.ownerId, sql.placeholder('ownerId'))
  const byIdAndOwner = and(eq(tasks.id, sql.placeholder('id')), ownedBy)
  const newestFirst = [desc(tasks.createdAt), desc(tasks.id)] as const

  const firstPage = db.select(publicTask).from(tasks).where(ownedBy)
    .orderBy(...newestFirst).limit(sql.placeholder('limit')).prepare('tasks_first_page')
  // Keyset paging: rows strictly after the cursor in (created_at, id) order. Inserts made between
  // two page fetches land before the first page, so a walk never repeats or skips a row.
  const nextPage = db.select(publicTask).from(tasks)
    .where(and(ownedBy, sql`(${tasks.createdAt}, ${tasks.id}) < (${sql.placeholder('cursorAt')}::timestamptz, ${sql.placeholder('cursorId')}::uuid)`))
    .orderBy(...newestFirst).limit(sql.placeholder('limit')).prepare('tasks_next_page')
  const one = db.select(publicTask).from(tasks).where(byIdAndOwner).prepare('tasks_one')
  const insert = db.insert(tasks).values({
    ownerId: sql.placeholder('ownerId'),
    title: sql.placeholder('title'),
    description: sql.placeholder('description'),
    done: sql.placeholder('done'),
  }).returning(publicTask).prepare('tasks_insert')
  const remove = db.delete(tasks).where(byIdAndOwner).returning({ id: tasks.id }).prepare('tasks_delete')

  return {
    async list (ownerId: string, limit: number, cursor: string | undefined) {
      const rows = cursor === undefined
        ? await firstPage.execute({ ownerId, limit: limit + 1 })
        : await (() => {
          const { at, id } = decodeCursor(cursor)
          return nextPage.execute({ ownerId, limit: limit + 1, cursorAt: at.toISOString(), cursorId: id })
        })()
      return toPage(rows, limit, (task) => ({ at: task.createdAt, id: task.id }))
    },
    async create (ownerId: string, values: TaskChanges & { title: string }) {
      const [task] = await insert.execute({ ownerId, title: values.title, description: values.description ?? '', done: values.done ?? false })
      return task!
    },
    async get (ownerId: string, id: string) {
      const [task] = await one.execute({ ownerId, id })
      return task
    },
    async update (ownerId: string, id: string, changes: TaskChanges) {
      const [task] = await db.update(tasks).set({ ...changes, updatedAt: sql`now()` })
        .where(and(eq(tasks.id, id), eq(tasks.ownerId, ownerId))).returning(publicTask)
      return task
    },
    async remove (ownerId: string, id: string) {
      const deleted = await remove.execute({ ownerId, id })
      return deleted.length > 0
    },
  }
}

export type TaskQueries = ReturnType<typeof prepareTaskQueries>
