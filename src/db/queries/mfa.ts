import { and, eq, isNotNull, isNull, lt, or, sql, type SQL } from 'drizzle-orm'
import type { Db } from '../client.js'
import type { SecretBox } from '../../secret-box.js'
import { recoveryCodes, users, type Role } from '../schema.js'

/** TOTP is on (confirmed), so a code must follow a password. */
export const totpOn: SQL<boolean> = sql<boolean>`${users.totpEnabledAt} is not null`

/**
 * Whether the user (of the `users` row in scope) has a second factor: the one place that says what
 * counts as one, a TOTP or a passkey; every check follows (user.mfa, MFA_REQUIRED_ROLES,
 * tokenRequired, the task statements). The outer row is named as "users"."id" on purpose: inside
 * the subquery an unqualified "id" would be the passkey's own.
 */
export const hasSecondFactor: SQL<boolean> = sql<boolean>`(${totpOn} or exists (select 1 from "passkeys" where "passkeys"."user_id" = "users"."id"))`

/**
 * True when MFA_REQUIRED_ROLES lets this user (of the `users` row in scope) use the API beyond
 * enrolment: their role needs no second factor, or they have one.
 */
export function meetsSecondFactorPolicy (requiredRoles: readonly Role[]): SQL | undefined {
  if (requiredRoles.length === 0) return undefined
  return sql`(${users.role} not in (${sql.join(requiredRoles.map((role) => sql`${role}`), sql`, `)}) or ${hasSecondFactor})`
}

export interface TotpState { sealedSecret: string, enabled: boolean }

export async function findTotp (db: Db, userId: string): Promise<TotpState | undefined> {
  const [row] = await db.select({ sealedSecret: users.totpSecret, enabledAt: users.totpEnabledAt })
    .from(users).where(and(eq(users.id, userId), isNotNull(users.totpSecret)))
  return row === undefined || row.sealedSecret === null ? undefined : { sealedSecret: row.sealedSecret, enabled: row.enabledAt !== null }
}

/**
 * Stores a new, not yet active secret; a second enrolment before confirming replaces the first.
 * False when TOTP is already on (it must be turned off first, with the password and a code).
 */
export async function startTotpEnrolment (db: Db, userId: string, sealedSecret: string): Promise<boolean> {
  const rows = await db.update(users).set({ totpSecret: sealedSecret, totpLastStep: null })
    .where(and(eq(users.id, userId), isNull(users.totpEnabledAt)))
    .returning({ id: users.id })
  return rows.length > 0
}

/**
 * Accepts a time step once: one conditional update that succeeds only for a step later than the
 * last one accepted, so the same code sent twice (or two codes of one step) at once has one
 * winner, on any instance. `enabled` says which state the secret must be in (on, or awaiting
 * its confirming code), so an enrolment's code cannot pass for a sign-in code.
 */
export async function claimTotpStep (db: Db, userId: string, step: number, enabled: boolean): Promise<boolean> {
  const rows = await db.update(users).set({ totpLastStep: step })
    .where(and(
      eq(users.id, userId),
      isNotNull(users.totpSecret),
      enabled ? isNotNull(users.totpEnabledAt) : isNull(users.totpEnabledAt),
      or(isNull(users.totpLastStep), lt(users.totpLastStep, step))
    ))
    .returning({ id: users.id })
  return rows.length > 0
}

export async function enableTotp (db: Db, userId: string): Promise<boolean> {
  const rows = await db.update(users).set({ totpEnabledAt: sql`now()` })
    .where(and(eq(users.id, userId), isNotNull(users.totpSecret), isNull(users.totpEnabledAt)))
    .returning({ id: users.id })
  return rows.length > 0
}

/** TOTP off: the secret, its replay state and every recovery code are gone. */
export async function disableTotp (db: Db, userId: string): Promise<boolean> {
  const rows = await db.update(users).set({ totpSecret: null, totpEnabledAt: null, totpLastStep: null })
    .where(and(eq(users.id, userId), isNotNull(users.totpSecret)))
    .returning({ id: users.id })
  await db.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId))
  return rows.length > 0
}

/** The old codes are void the moment the new ones exist (same transaction). */
export async function replaceRecoveryCodes (db: Db, userId: string, codeHashes: readonly string[]): Promise<void> {
  await db.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId))
  await db.insert(recoveryCodes).values(codeHashes.map((codeHash) => ({ userId, codeHash })))
}

/** Uses a recovery code up: one conditional update, so of two uses at once exactly one wins. */
export async function useRecoveryCode (db: Db, userId: string, codeHash: string): Promise<boolean> {
  const rows = await db.update(recoveryCodes).set({ usedAt: sql`now()` })
    .where(and(eq(recoveryCodes.userId, userId), eq(recoveryCodes.codeHash, codeHash), isNull(recoveryCodes.usedAt)))
    .returning({ userId: recoveryCodes.userId })
  return rows.length > 0
}

export async function countRecoveryCodesLeft (db: Db, userId: string): Promise<number> {
  const [row] = await db.select({ left: sql<number>`count(*)::int` }).from(recoveryCodes)
    .where(and(eq(recoveryCodes.userId, userId), isNull(recoveryCodes.usedAt)))
  return row?.left ?? 0
}

/**
 * After a key rotation: opens each secret sealed with an older key (ENCRYPTION_PREVIOUS_KEYS) and
 * seals it again with the current one. Each row is swapped only if it still holds the value read,
 * so a user enrolling meanwhile is never overwritten. Returns how many were re-sealed.
 */
export async function reencryptTotpSecrets (db: Db, box: SecretBox): Promise<number> {
  const rows = await db.select({ id: users.id, sealed: users.totpSecret }).from(users).where(isNotNull(users.totpSecret))
  let resealed = 0
  for (const row of rows) {
    if (row.sealed === null || !box.isStale(row.sealed)) continue
    const updated = await db.update(users).set({ totpSecret: box.seal(box.open(row.sealed, row.id), row.id) })
      .where(and(eq(users.id, row.id), eq(users.totpSecret, row.sealed)))
      .returning({ id: users.id })
    resealed += updated.length
  }
  return resealed
}
