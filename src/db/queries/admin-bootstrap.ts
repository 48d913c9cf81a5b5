import type { Db } from '../client.js'
import { hashPassword } from '../../passwords.js'
import { UsernameTaken } from '../../errors.js'
import { recordAuditEvent, type AuditLog } from './audit.js'
import { createUser, findUserWithHashByName } from './users.js'

/**
 * ADMIN_USERNAME/ADMIN_PASSWORD: creates that admin when no user has the name; an existing user of
 * that name is left as it is (its role and password are the database's business from then on).
 * Both values were checked by loadConfig.
 */
export async function ensureAdmin (db: Db, log: AuditLog, username: string, password: string): Promise<boolean> {
  if (await findUserWithHashByName(db, username)) return false
  const passwordHash = await hashPassword(password)
  try {
    await db.transaction(async (tx) => {
      const user = await createUser(tx, { username, passwordHash, role: 'admin' })
      await recordAuditEvent(tx, log, { type: 'user_created', userId: user.id, detail: { role: 'admin', by: 'ADMIN_USERNAME' } })
    })
  } catch (error) {
    // Another instance starting at the same moment created it first.
    if (error instanceof UsernameTaken) return false
    throw error
  }
  return true
}
