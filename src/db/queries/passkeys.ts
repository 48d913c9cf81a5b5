import { and, asc, count, eq, sql } from 'drizzle-orm'
import type { Db } from '../client.js'
import { passkeys } from '../schema.js'

/** What the owner sees of a passkey: never its key material. */
export const publicPasskey = {
  id: passkeys.id,
  name: passkeys.name,
  createdAt: passkeys.createdAt,
  lastUsedAt: passkeys.lastUsedAt,
}

export interface PasskeyRow { id: string, name: string, createdAt: Date, lastUsedAt: Date | null }

export interface NewPasskey {
  userId: string
  credentialId: string
  publicKey: string
  counter: number
  transports: string[]
  name: string
  deviceType: string
  backedUp: boolean
  aaguid: string
}

/** Stores a verified passkey; undefined when its credential id is already registered (to anyone). */
export async function insertPasskey (db: Db, values: NewPasskey): Promise<PasskeyRow | undefined> {
  // The unique index decides, with no error: inside a transaction a failed insert would void the rest.
  const [row] = await db.insert(passkeys).values(values).onConflictDoNothing({ target: passkeys.credentialId }).returning(publicPasskey)
  return row
}

export async function listPasskeys (db: Db, userId: string): Promise<PasskeyRow[]> {
  return db.select(publicPasskey).from(passkeys).where(eq(passkeys.userId, userId)).orderBy(asc(passkeys.createdAt), asc(passkeys.id))
}

export async function countPasskeys (db: Db, userId: string): Promise<number> {
  const [row] = await db.select({ n: count() }).from(passkeys).where(eq(passkeys.userId, userId))
  return row?.n ?? 0
}

/** The user's credentials, for the registration options' excludeCredentials (no second passkey on one authenticator). */
export async function credentialsOfUser (db: Db, userId: string): Promise<Array<{ credentialId: string, transports: string[] }>> {
  return db.select({ credentialId: passkeys.credentialId, transports: passkeys.transports }).from(passkeys).where(eq(passkeys.userId, userId))
}

export async function findPasskeyByCredentialId (db: Db, credentialId: string) {
  const [row] = await db.select({
    id: passkeys.id,
    userId: passkeys.userId,
    credentialId: passkeys.credentialId,
    publicKey: passkeys.publicKey,
    counter: passkeys.counter,
    transports: passkeys.transports,
  }).from(passkeys).where(eq(passkeys.credentialId, credentialId))
  return row
}

/**
 * Records a sign-in with a passkey, advancing its signature counter in one conditional update: it
 * succeeds only while the stored counter is still the one the signature was checked against and
 * the new one is higher (or both are 0: a passkey that keeps no counter). So two sign-ins carrying
 * the same counter, even at once, have one winner, and a counter that went backwards (a cloned
 * key) moves nothing.
 */
export async function recordPasskeyUse (db: Db, id: string, checkedCounter: number, newCounter: number, backedUp: boolean): Promise<boolean> {
  const rows = await db.update(passkeys)
    .set({ counter: newCounter, backedUp, lastUsedAt: sql`now()` })
    .where(and(
      eq(passkeys.id, id),
      eq(passkeys.counter, checkedCounter),
      newCounter === 0 ? eq(passkeys.counter, 0) : sql`${passkeys.counter} < ${newCounter}`
    ))
    .returning({ id: passkeys.id })
  return rows.length > 0
}

/** Removes one of the user's passkeys; false when the user has none with that id. */
export async function deletePasskey (db: Db, userId: string, id: string): Promise<PasskeyRow | undefined> {
  const [row] = await db.delete(passkeys).where(and(eq(passkeys.id, id), eq(passkeys.userId, userId))).returning(publicPasskey)
  return row
}

/** Every passkey of a user (an administrator's second-factor reset); how many there were. */
export async function deleteAllPasskeys (db: Db, userId: string): Promise<number> {
  const removed = await db.delete(passkeys).where(eq(passkeys.userId, userId)).returning({ id: passkeys.id })
  return removed.length
}
