import { eq, sql } from 'drizzle-orm'
import type { Db } from '../client.js'
import { users } from '../schema.js'
import { EmailTokenInvalid, sqlState } from '../../errors.js'
import { publicUser } from './users.js'
import { totpOn } from './mfa.js'

/** The account whose verified address this is (any letter case), if any. */
export async function findUserByVerifiedEmail (db: Db, email: string) {
  const [user] = await db.select({ id: users.id, username: users.username, totpOn })
    .from(users)
    .where(eq(sql`lower(${users.email})`, email.toLowerCase()))
  return user
}

/**
 * Locks the user's row for the rest of the transaction: two requests issuing the same kind of link
 * for one user take turns, so the second's "newer voids older" sees the first's link.
 */
export async function lockUser (tx: Db, userId: string): Promise<boolean> {
  const rows = await tx.select({ id: users.id }).from(users).where(eq(users.id, userId)).for('update')
  return rows.length > 0
}

export async function findEmailOf (db: Db, userId: string) {
  const [user] = await db.select({ username: users.username, email: users.email }).from(users).where(eq(users.id, userId))
  return user
}

/**
 * Makes `email` the user's verified address. The unique index on lower(email) decides between two
 * accounts verifying one address at once: the second finds its link no longer usable.
 */
export async function setVerifiedEmail (tx: Db, userId: string, email: string) {
  try {
    const [user] = await tx.update(users).set({ email, emailVerifiedAt: sql`now()` }).where(eq(users.id, userId)).returning(publicUser)
    return user
  } catch (error) {
    if (sqlState(error) === '23505') throw new EmailTokenInvalid()
    throw error
  }
}
