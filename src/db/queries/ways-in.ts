import { and, eq, ne, sql } from 'drizzle-orm'
import type { Db } from '../client.js'
import { passkeys, userIdentities, users } from '../schema.js'

/**
 * Whether the user keeps a way to sign in once one identity or one passkey is gone: a password,
 * another identity at a provider, or another passkey. Locks the user's row first, so two removals
 * at once take turns and the second sees what the first left (both cannot remove the last two).
 * undefined: no such user.
 */
export async function keepsAWayIn (tx: Db, userId: string, removing: { identityId?: string, passkeyId?: string }): Promise<boolean | undefined> {
  const [owner] = await tx.select({ hasPassword: sql<boolean>`${users.passwordHash} is not null` })
    .from(users).where(eq(users.id, userId)).for('update')
  if (owner === undefined) return undefined
  if (owner.hasPassword) return true
  const identity = removing.identityId === undefined ? eq(userIdentities.userId, userId) : and(eq(userIdentities.userId, userId), ne(userIdentities.id, removing.identityId))
  const passkey = removing.passkeyId === undefined ? eq(passkeys.userId, userId) : and(eq(passkeys.userId, userId), ne(passkeys.id, removing.passkeyId))
  const [other] = await tx.select({ found: sql<boolean>`exists (${tx.select({ one: sql`1` }).from(userIdentities).where(identity)}) or exists (${tx.select({ one: sql`1` }).from(passkeys).where(passkey)})` })
    .from(users).where(eq(users.id, userId))
  return other?.found === true
}
