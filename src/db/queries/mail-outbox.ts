import { randomUUID } from 'node:crypto'
import { and, asc, eq, inArray, isNull, lte, or, sql } from 'drizzle-orm'
import type { Db } from '../client.js'
import { mailOutbox } from '../schema.js'
import type { SecretBox } from '../../secret-box.js'

export interface OutgoingMail {
  readonly to: string
  readonly subject: string
  readonly text: string
  readonly html: string
  readonly kind: string
}

export interface ClaimedMail extends OutgoingMail {
  readonly id: string
  /** This attempt's number (1 for the first). */
  readonly attempt: number
}

/** A claimed row whose bodies are still sealed: `openMail` opens them (and may fail, for that row alone). */
export type SealedMail = ClaimedMail

/** The bodies in clear, for the send. Throws when ENCRYPTION_KEY cannot open them. */
export function openMail (box: SecretBox, mail: SealedMail): ClaimedMail {
  return { ...mail, text: box.open(mail.text, mail.id), html: box.open(mail.html, mail.id) }
}

/**
 * Writes a mail to the outbox. Call it with the transaction of the change the mail reports: it is
 * sent only if that change commits, and surely then. The bodies may hold a one-time link, so they
 * are sealed with ENCRYPTION_KEY (a database copy yields no usable link) and erased once sent.
 */
export async function enqueueMail (tx: Db, box: SecretBox, mail: OutgoingMail): Promise<string> {
  const id = randomUUID()
  await tx.insert(mailOutbox).values({
    id,
    to: mail.to,
    subject: mail.subject,
    kind: mail.kind,
    text: box.seal(mail.text, id),
    html: box.seal(mail.html, id),
  })
  return id
}

const isPending = () => and(isNull(mailOutbox.sentAt), isNull(mailOutbox.gaveUpAt))

/**
 * Claims up to `limit` due mails for this instance: the rows are locked `for update skip locked`
 * (another instance claiming at the same moment skips them instead of waiting or taking them too)
 * and given a lease, and the claim commits before anything is sent. A sender that dies leaves a
 * lease that runs out; the row is then due again for any instance.
 */
export async function claimDueMails (db: Db, leaseSeconds: number, limit: number): Promise<SealedMail[]> {
  return db.transaction(async (tx) => {
    const due = await tx.select({ id: mailOutbox.id }).from(mailOutbox)
      .where(and(isPending(), lte(mailOutbox.dueAt, sql`now()`),
        or(isNull(mailOutbox.claimedUntil), lte(mailOutbox.claimedUntil, sql`now()`))))
      .orderBy(asc(mailOutbox.dueAt))
      .limit(limit)
      .for('update', { skipLocked: true })
    if (due.length === 0) return []
    const claimed = await tx.update(mailOutbox)
      .set({ claimedUntil: sql`now() + make_interval(secs => ${leaseSeconds})`, attempts: sql`${mailOutbox.attempts} + 1` })
      .where(inArray(mailOutbox.id, due.map((row) => row.id)))
      .returning({
        id: mailOutbox.id,
        to: mailOutbox.to,
        subject: mailOutbox.subject,
        text: mailOutbox.text,
        html: mailOutbox.html,
        kind: mailOutbox.kind,
        attempt: mailOutbox.attempts,
      })
    // RETURNING comes in the table's order, not the select's: the oldest due mail goes first.
    const position = new Map(due.map((row, index) => [row.id, index]))
    return claimed.sort((a, b) => position.get(a.id)! - position.get(b.id)!)
  })
}

// A claim is an attempt: each claim counts one more, so `attempts` tells whether this sender still
// holds the row. Renewals and marks change it only then: a sender that lost its claim must not
// extend or clear the lease of the instance that holds it now.
const heldBy = (id: string, attempt: number) => and(eq(mailOutbox.id, id), eq(mailOutbox.attempts, attempt))

/**
 * Extends this instance's claim on one mail just before its send, so that each send has a whole
 * lease, however long the batch before it took. False when the claim was lost: the lease ran out
 * and another instance claimed the row again (its claim counted another attempt), or the row is
 * done. The caller then leaves that mail to the other instance: never two senders for one mail.
 */
export async function renewClaim (db: Db, id: string, attempt: number, leaseSeconds: number): Promise<boolean> {
  const renewed = await db.update(mailOutbox)
    .set({ claimedUntil: sql`now() + make_interval(secs => ${leaseSeconds})` })
    .where(and(heldBy(id, attempt), isPending()))
    .returning({ id: mailOutbox.id })
  return renewed.length === 1
}

/** Sent: the bodies (and any link in them) are erased; the row stays as a record until purged. */
export async function markMailSent (db: Db, id: string, attempt: number): Promise<void> {
  await db.update(mailOutbox).set({ sentAt: sql`now()`, claimedUntil: null, text: '', html: '', lastError: null })
    .where(heldBy(id, attempt))
}

/**
 * A failed attempt: due again after `retryInSeconds`, or never again when `giveUp` (the server
 * refused the mail for good, or the attempts ran out). The error is kept for the operator.
 */
export async function markMailFailed (db: Db, id: string, attempt: number, error: string, retryInSeconds: number, giveUp: boolean): Promise<void> {
  await db.update(mailOutbox).set({
    claimedUntil: null,
    lastError: error.slice(0, 500),
    dueAt: sql`now() + make_interval(secs => ${retryInSeconds})`,
    ...(giveUp ? { gaveUpAt: sql`now()`, text: '', html: '' } : {}),
  }).where(heldBy(id, attempt))
}

/** Mails not yet sent and still to be tried (the `auth_mails_waiting` gauge). */
export async function countWaitingMails (db: Db): Promise<number> {
  const [row] = await db.select({ count: sql<number>`count(*)::int` }).from(mailOutbox).where(isPending())
  return row?.count ?? 0
}
