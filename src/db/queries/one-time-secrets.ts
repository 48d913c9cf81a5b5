import { createHash, randomBytes } from 'node:crypto'
import { and, eq, gt, isNull, sql } from 'drizzle-orm'
import type { Db } from '../client.js'
import { oneTimeSecrets } from '../schema.js'

/**
 * The purposes a one-time secret can serve. A value issued for one kind is never accepted for
 * another: every lookup names its kind.
 */
export type SecretKind =
  | 'email_verification'
  | 'password_reset'
  | 'mfa_pending'
  | 'webauthn_registration'
  | 'webauthn_authentication'
  | 'oidc_flow'
  | 'oidc_code'

export interface IssueSecret {
  readonly kind: SecretKind
  readonly userId: string | null
  readonly ttlSeconds: number
  readonly data?: Record<string, unknown>
  /** Void the user's unused secrets of the same kind: a newer link voids the older one. */
  readonly supersede?: boolean
}

export interface SecretRow {
  readonly userId: string | null
  readonly data: Record<string, unknown>
  readonly attempts: number
  readonly expiresAt: Date
}

/** 32 random bytes (256 bits), URL-safe; only the SHA-256 reaches the database. */
export function newSecretValue (): string {
  return randomBytes(32).toString('base64url')
}

export function hashSecret (value: string): string {
  return createHash('sha256').update(value).digest('hex')
}

const returned = {
  userId: oneTimeSecrets.userId,
  data: oneTimeSecrets.data,
  attempts: oneTimeSecrets.attempts,
  expiresAt: oneTimeSecrets.expiresAt,
}

/** Stores a new secret and gives its value out, once. Run it in the transaction that needs it. */
export async function issueSecret (db: Db, { kind, userId, ttlSeconds, data = {}, supersede = false }: IssueSecret): Promise<string> {
  if (supersede && userId !== null) await voidSecrets(db, userId, kind)
  const value = newSecretValue()
  await db.insert(oneTimeSecrets).values({
    secretHash: hashSecret(value),
    kind,
    userId,
    data,
    expiresAt: sql`now() + make_interval(secs => ${ttlSeconds})`,
  })
  return value
}

// Unused and unexpired, by the database's clock (every instance agrees on it).
const isLive = (kind: SecretKind, value: string) => and(
  eq(oneTimeSecrets.secretHash, hashSecret(value)),
  eq(oneTimeSecrets.kind, kind),
  isNull(oneTimeSecrets.usedAt),
  gt(oneTimeSecrets.expiresAt, sql`now()`)
)

/**
 * Uses a secret up: one conditional update, so of two uses at once exactly one gets the row and
 * the other gets undefined, like an unknown, expired or already used value.
 */
export async function consumeSecret (db: Db, kind: SecretKind, value: string): Promise<SecretRow | undefined> {
  const [row] = await db.update(oneTimeSecrets).set({ usedAt: sql`now()` }).where(isLive(kind, value)).returning(returned)
  return row
}

/** Reads a live secret without using it (a pending sign-in that still awaits its code). */
export async function findLiveSecret (db: Db, kind: SecretKind, value: string): Promise<SecretRow | undefined> {
  const [row] = await db.select(returned).from(oneTimeSecrets).where(isLive(kind, value))
  return row
}

/**
 * Counts a wrong attempt against a live secret; the attempt that reaches `maxAttempts` uses it
 * up. Returns the attempts made so far, or undefined when the secret was no longer live.
 */
export async function recordFailedAttempt (db: Db, kind: SecretKind, value: string, maxAttempts: number): Promise<number | undefined> {
  const [row] = await db.update(oneTimeSecrets).set({
    attempts: sql`${oneTimeSecrets.attempts} + 1`,
    usedAt: sql`case when ${oneTimeSecrets.attempts} + 1 >= ${maxAttempts} then now() else null end`,
  }).where(isLive(kind, value)).returning({ attempts: oneTimeSecrets.attempts })
  return row?.attempts
}

/** Voids every live secret of a kind for a user (e.g. pending sign-ins after a password reset). */
export async function voidSecrets (db: Db, userId: string, kind: SecretKind): Promise<number> {
  const rows = await db.update(oneTimeSecrets).set({ usedAt: sql`now()` })
    .where(and(eq(oneTimeSecrets.userId, userId), eq(oneTimeSecrets.kind, kind), isNull(oneTimeSecrets.usedAt),
      gt(oneTimeSecrets.expiresAt, sql`now()`)))
    .returning({ kind: oneTimeSecrets.kind })
  return rows.length
}
