import { and, isNotNull, lt, or, sql } from 'drizzle-orm'
import type { Db } from '../client.js'
import { mailOutbox, oneTimeSecrets, sessions } from '../schema.js'

// Any constant works: the same in every instance, and not the migrations' lock.
const PURGE_LOCK_ID = 7_310_442_020

/**
 * How long ended rows are kept. An ended session (revoked, idle past its refresh TTL, or past
 * SESSION_MAX_AGE) and a used or expired one-time secret serve nothing: a day's grace, then gone.
 * Audit rows are never purged; they say what happened without these.
 */
export const PURGE_RETENTION_SECONDS = 24 * 60 * 60

export interface PurgeResult { readonly sessions: number, readonly oneTimeSecrets: number, readonly mails: number }

/**
 * Deletes sessions that ended more than the retention ago (their refresh tokens go with them, by
 * cascade) and one-time secrets used or expired as long ago. One instance at a time: the others
 * find the advisory lock taken and skip this round (undefined).
 */
export async function purgeEndedRows (db: Db, retentionSeconds = PURGE_RETENTION_SECONDS): Promise<PurgeResult | undefined> {
  return db.transaction(async (tx) => {
    const [lock] = await tx.select({ isLocked: sql<boolean>`pg_try_advisory_xact_lock(${PURGE_LOCK_ID})` }).from(sql`(select 1) as one`)
    if (lock?.isLocked !== true) return undefined
    const before = sql`now() - make_interval(secs => ${retentionSeconds})`
    const endedSessions = await tx.delete(sessions)
      .where(or(
        and(isNotNull(sessions.revokedAt), lt(sessions.revokedAt, before)),
        lt(sessions.expiresAt, before),
        lt(sessions.absoluteExpiresAt, before)
      ))
      .returning({ id: sessions.id })
    const spentSecrets = await tx.delete(oneTimeSecrets)
      .where(or(
        and(isNotNull(oneTimeSecrets.usedAt), lt(oneTimeSecrets.usedAt, before)),
        lt(oneTimeSecrets.expiresAt, before)
      ))
      .returning({ kind: oneTimeSecrets.kind })
    // Outbox rows sent or given up (their bodies are already erased) have told their story.
    const doneMails = await tx.delete(mailOutbox)
      .where(or(lt(mailOutbox.sentAt, before), lt(mailOutbox.gaveUpAt, before)))
      .returning({ id: mailOutbox.id })
    return { sessions: endedSessions.length, oneTimeSecrets: spentSecrets.length, mails: doneMails.length }
  })
}
