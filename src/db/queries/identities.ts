import { and, asc, eq } from 'drizzle-orm'
import type { Db } from '../client.js'
import { userIdentities, users } from '../schema.js'
import { UsernameTaken } from '../../errors.js'
import { totpOn } from './mfa.js'
import { createUser, publicUser, type UserRow } from './users.js'
import { keepsAWayIn } from './ways-in.js'

/** What a provider vouched for, once openid-client has checked the ID token. */
export interface VerifiedIdentity {
  provider: string
  issuer: string
  subject: string
  /** Display only: never used to find or link an account. */
  email: string | null
}

export interface IdentityRow { id: string, provider: string, email: string | null, createdAt: Date }

const identityColumns = {
  id: userIdentities.id,
  provider: userIdentities.provider,
  email: userIdentities.email,
  createdAt: userIdentities.createdAt,
}

/** The user an identity signs in, with whether a TOTP code must follow (as after a password). */
export async function findUserByIdentity (db: Db, issuer: string, subject: string) {
  const [user] = await db
    .select({ ...publicUser, totpOn })
    .from(userIdentities)
    .innerJoin(users, eq(users.id, userIdentities.userId))
    .where(and(eq(userIdentities.issuer, issuer), eq(userIdentities.subject, subject)))
  return user
}

export async function listIdentities (db: Db, userId: string): Promise<IdentityRow[]> {
  return db.select(identityColumns).from(userIdentities)
    .where(eq(userIdentities.userId, userId))
    .orderBy(asc(userIdentities.createdAt), asc(userIdentities.id))
}

/**
 * Links an identity to a user. Undefined when the identity already belongs to someone (the unique
 * (issuer, subject) index decides, so two links at once cannot both win); the same user linking it
 * again gets the existing row, with `created` false. Run it in the transaction that records the
 * audit event.
 */
export async function linkIdentity (tx: Db, userId: string, identity: VerifiedIdentity): Promise<{ row: IdentityRow, created: boolean } | undefined> {
  const [created] = await tx.insert(userIdentities).values({ userId, ...identity })
    .onConflictDoNothing({ target: [userIdentities.issuer, userIdentities.subject] })
    .returning(identityColumns)
  if (created !== undefined) return { row: created, created: true }
  const [existing] = await tx.select(identityColumns).from(userIdentities)
    .where(and(eq(userIdentities.issuer, identity.issuer), eq(userIdentities.subject, identity.subject), eq(userIdentities.userId, userId)))
  return existing === undefined ? undefined : { row: existing, created: false }
}

// Candidates are tried in this order; after that, random suffixes (a name everybody wants).
const NUMBERED_TRIES = 8

/**
 * Creates an account for a first sign-in with a provider: no password, role `user`, a username from
 * the candidates made unique with a suffix. Each try runs in a savepoint, so a taken name does not
 * spoil the transaction. Run it in a transaction (the caller's, which also links the identity).
 */
export async function createUserWithUniqueName (tx: Db, base: string): Promise<UserRow> {
  const names = [base, ...Array.from({ length: NUMBERED_TRIES }, (_, index) => withSuffix(base, String(index + 2)))]
  for (let attempt = 0; ; attempt++) {
    const username = names[attempt] ?? withSuffix(base, String(Math.floor(Math.random() * 1_000_000)))
    try {
      return await tx.transaction((savepoint) => createUser(savepoint, { username, passwordHash: null }))
    } catch (error) {
      if (!(error instanceof UsernameTaken) || attempt > NUMBERED_TRIES + 20) throw error
    }
  }
}

/** `base-suffix`, the base cut so that the whole stays within 32 characters. */
function withSuffix (base: string, suffix: string): string {
  return `${base.slice(0, 32 - suffix.length - 1)}-${suffix}`
}

/**
 * Removes one of the user's identities, unless it is their last way to sign in (no password, no
 * other identity, no passkey; see keepsAWayIn, which locks the user's row so two removals at once
 * take turns). Returns 'removed', 'not_found' or 'last_way'.
 */
export async function unlinkIdentity (tx: Db, userId: string, identityId: string): Promise<{ outcome: 'removed', identity: IdentityRow } | { outcome: 'not_found' } | { outcome: 'last_way' }> {
  const keeps = await keepsAWayIn(tx, userId, { identityId })
  const [identity] = await tx.select(identityColumns).from(userIdentities)
    .where(and(eq(userIdentities.id, identityId), eq(userIdentities.userId, userId)))
  if (keeps === undefined || identity === undefined) return { outcome: 'not_found' }
  if (!keeps) return { outcome: 'last_way' }
  await tx.delete(userIdentities).where(and(eq(userIdentities.id, identityId), eq(userIdentities.userId, userId)))
  return { outcome: 'removed', identity }
}
