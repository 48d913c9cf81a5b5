import { and, desc, eq, sql } from 'drizzle-orm'
import type { Db } from '../client.js'
import { sessions, tasks, users, type Role } from '../schema.js'
import { decodeCursor, olderThan, toPage } from '../pagination.js'
import { MfaEnrolmentRequired, SessionRevoked } from '../../errors.js'
import { meetsSecondFactorPolicy } from './mfa.js'
import { activeSession, prepareActiveSessionUser, type Caller } from './sessions.js'

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
 * The task queries check the caller's session themselves, in the same statement as the work:
 * the owner is `(select user_id from sessions where <that session is alive>)`, so a revoked or
 * expired session owns nothing and can create nothing, and a request costs one round trip, not two.
 * Only when a statement finds no row is the session looked up alone, to tell a 401 from a 404.
 *
 * Ownership lives in the WHERE clause too: another user's task is simply not found, exactly like
 * one that never existed. Every statement is prepared once per database, so Postgres parses and
 * plans it once per connection, not once per request.
 *
 * MFA_REQUIRED_ROLES holds here too, in the same statement: a session whose user's role (as
 * stored now) needs a second factor they lack owns nothing either, and the follow-up lookup
 * turns that into a 403 MFA_ENROLMENT_REQUIRED.
 */
export function prepareTaskQueries (db: Db, mfaRequiredRoles: readonly Role[] = []) {
  const caller = { sessionId: sql.placeholder('sessionId'), userId: sql.placeholder('userId') }
  const policy = meetsSecondFactorPolicy(mfaRequiredRoles)
  const liveSessionOfAllowedUser = (who: { sessionId: unknown, userId: unknown }) => and(activeSession(who), policy)
  const ownedBy = (who: { sessionId: unknown, userId: unknown }) =>
    eq(tasks.ownerId, sql`(${db.select({ userId: sessions.userId }).from(sessions).innerJoin(users, eq(users.id, sessions.userId)).where(liveSessionOfAllowedUser(who))})`)
  const ownedByCaller = ownedBy(caller)
  const byIdForCaller = and(eq(tasks.id, sql.placeholder('id')), ownedByCaller)
  const newestFirst = [desc(tasks.createdAt), desc(tasks.id)] as const

  const firstPage = db.select(publicTask).from(tasks).where(ownedByCaller)
    .orderBy(...newestFirst).limit(sql.placeholder('limit')).prepare('tasks_first_page')
  // Keyset paging: rows strictly after the cursor in (created_at, id) order. Inserts made between
  // two page fetches land before the first page, so a walk never repeats or skips a row.
  const nextPage = db.select(publicTask).from(tasks)
    .where(and(ownedByCaller, olderThan(tasks.createdAt, tasks.id, sql.placeholder('cursorAt'), sql.placeholder('cursorId'))))
    .orderBy(...newestFirst).limit(sql.placeholder('limit')).prepare('tasks_next_page')
  const one = db.select(publicTask).from(tasks).where(byIdForCaller).prepare('tasks_one')
  // insert … select from the live session: no live session, no row. Drizzle's insert-select wants
  // every column, in table order.
  const insert = db.insert(tasks).select(db.select({
    id: sql<string>`gen_random_uuid()`.as('id'),
    ownerId: sessions.userId,
    title: sql<string>`${sql.placeholder('title')}::text`.as('title'),
    description: sql<string>`${sql.placeholder('description')}::text`.as('description'),
    done: sql<boolean>`${sql.placeholder('done')}::boolean`.as('done'),
    createdAt: sql<Date>`now()`.as('created_at'),
    updatedAt: sql<Date>`now()`.as('updated_at'),
  }).from(sessions).innerJoin(users, eq(users.id, sessions.userId)).where(liveSessionOfAllowedUser(caller))).returning(publicTask).prepare('tasks_insert')
  const remove = db.delete(tasks).where(byIdForCaller).returning({ id: tasks.id }).prepare('tasks_delete')
  const sessionUser = prepareActiveSessionUser(db)

  const requiredRoles = new Set(mfaRequiredRoles)
  /**
   * After a statement found nothing: a dead session is a 401, a user who must enrol first a 403,
   * anything else means "no such task".
   */
  async function assertSessionAlive (who: Caller) {
    const [alive] = await sessionUser.execute({ ...who })
    if (!alive) throw new SessionRevoked()
    if (requiredRoles.has(alive.role) && !alive.mfa) throw new MfaEnrolmentRequired()
  }

  return {
    async list (who: Caller, limit: number, cursor: string | undefined) {
      const after = cursor === undefined ? undefined : decodeCursor(cursor)
      const rows = after === undefined
        ? await firstPage.execute({ ...who, limit: limit + 1 })
        : await nextPage.execute({ ...who, limit: limit + 1, cursorAt: after.at.toISOString(), cursorId: after.id })
      if (rows.length === 0) await assertSessionAlive(who)
      return toPage(rows, limit, (task) => ({ at: task.createdAt, id: task.id }))
    },
    async create (who: Caller, values: TaskChanges & { title: string }) {
      const [task] = await insert.execute({ ...who, title: values.title, description: values.description ?? '', done: values.done ?? false })
      if (!task) {
        await assertSessionAlive(who)
        throw new SessionRevoked()
      }
      return task
    },
    async get (who: Caller, id: string) {
      const [task] = await one.execute({ ...who, id })
      if (!task) await assertSessionAlive(who)
      return task
    },
    async update (who: Caller, id: string, changes: TaskChanges) {
      // Not prepared: which columns it sets depends on the request.
      const [task] = await db.update(tasks).set({ ...changes, updatedAt: sql`now()` })
        .where(and(eq(tasks.id, id), ownedBy(who)))
        .returning(publicTask)
      if (!task) await assertSessionAlive(who)
      return task
    },
    async remove (who: Caller, id: string) {
      const deleted = await remove.execute({ ...who, id })
      if (deleted.length === 0) await assertSessionAlive(who)
      return deleted.length > 0
    },
  }
}
