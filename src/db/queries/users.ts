import { and, desc, eq, isNotNull, isNull, sql } from 'drizzle-orm'
import type { SelectResultFields } from 'drizzle-orm/query-builders/select.types'
import type { Db } from '../client.js'
import { users, type Role } from '../schema.js'
import { LastAdmin, sqlState, UsernameTaken } from '../../errors.js'
import { decodeCursor, olderThan, toPage } from '../pagination.js'
import { hasSecondFactor, totpOn } from './mfa.js'

/** The columns a user may see. `password_hash` is never fetched unless a password is being checked. */
export const publicUser = {
  id: users.id,
  username: users.username,
  role: users.role,
  createdAt: users.createdAt,
  mfa: hasSecondFactor,
  email: users.email,
  // The column only ever holds an address proven by its verification link.
  emailVerified: sql<boolean>`(${users.email} is not null)`,
}

/** A user as the API shows it: publicUser's columns, typed by Drizzle from the selection itself. */
export type UserRow = SelectResultFields<typeof publicUser>

const UNIQUE_VIOLATION = '23505'

/**
 * Inserts a user; a name already taken in any letter case is a 409. The unique index on
 * lower(username) decides, so two concurrent registrations of one name cannot both succeed.
 */
export async function createUser (db: Db, values: { username: string, passwordHash: string | null, role?: Role }) {
  try {
    const [user] = await db.insert(users).values(values).returning(publicUser)
    return user!
  } catch (error) {
    if (sqlState(error) === UNIQUE_VIOLATION) throw new UsernameTaken()
    throw error
  }
}

/** For a sign-in: the hash to check, and whether a TOTP code must follow the password. */
export async function findUserWithHashByName (db: Db, username: string) {
  const [user] = await db
    .select({ ...publicUser, passwordHash: users.passwordHash, totpOn })
    .from(users)
    .where(eq(sql`lower(${users.username})`, username.toLowerCase()))
  return user
}

export async function findUserWithHashById (db: Db, id: string) {
  const [user] = await db.select({ ...publicUser, passwordHash: users.passwordHash }).from(users).where(eq(users.id, id))
  return user
}

export async function findUserById (db: Db, id: string) {
  const [user] = await db.select(publicUser).from(users).where(eq(users.id, id))
  return user
}

export async function setPasswordHash (db: Db, id: string, passwordHash: string) {
  const [user] = await db.update(users).set({ passwordHash }).where(eq(users.id, id)).returning(publicUser)
  return user
}

/** Sets a first password on an account that has none (one made by a provider); false when it has one. */
export async function setFirstPassword (db: Db, id: string, passwordHash: string): Promise<boolean> {
  const rows = await db.update(users).set({ passwordHash })
    .where(and(eq(users.id, id), isNull(users.passwordHash)))
    .returning({ id: users.id })
  return rows.length === 1
}

/** Whether the account has a password (one made by a provider may not). */
export async function hasPassword (db: Db, id: string): Promise<boolean> {
  const [row] = await db.select({ id: users.id }).from(users).where(and(eq(users.id, id), isNotNull(users.passwordHash)))
  return row !== undefined
}

/** Every user, newest first, a keyset page at a time. */
export async function listUsers (db: Db, limit: number, cursor: string | undefined) {
  const after = cursor === undefined ? undefined : decodeCursor(cursor)
  const rows = await db.select(publicUser).from(users)
    .where(after === undefined ? undefined : olderThan(users.createdAt, users.id, after.at.toISOString(), after.id))
    .orderBy(desc(users.createdAt), desc(users.id))
    .limit(limit + 1)
  return toPage(rows, limit, (user) => ({ at: user.createdAt, id: user.id }))
}

/**
 * Locks every admin row, then checks that the admins left after the change would not be zero. Two
 * admins demoting (or deleting) each other at the same moment take turns on the lock, and the
 * second finds itself the last admin. `tx` must be the transaction the change runs in.
 */
async function guardLastAdmin (tx: Db, targetId: string, losesAdmin: boolean): Promise<void> {
  const admins = await tx.select({ id: users.id }).from(users).where(eq(users.role, 'admin')).for('update')
  if (losesAdmin && admins.length === 1 && admins[0]?.id === targetId) throw new LastAdmin()
}

/** Run it in a transaction (the caller's, which also records the audit event). */
export async function changeRole (tx: Db, id: string, role: Role) {
  await guardLastAdmin(tx, id, role !== 'admin')
  const [user] = await tx.update(users).set({ role }).where(eq(users.id, id)).returning(publicUser)
  return user
}

/**
 * Deletes the user; the foreign keys cascade to their sessions (revoked at once) and tasks. Run it
 * in a transaction (the caller's, which also records the audit event).
 */
export async function deleteUser (tx: Db, id: string) {
  await guardLastAdmin(tx, id, true)
  const [user] = await tx.delete(users).where(eq(users.id, id)).returning(publicUser)
  return user
}
