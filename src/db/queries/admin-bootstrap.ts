import type { Db } from '../client.js'
import { hashPassword, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../../passwords.js'
import { ConfigError } from '../../config.js'
import { UsernameTaken } from '../../errors.js'
import { recordAuditEvent, type AuditLog } from './audit.js'
import { createUser, findUserWithHashByName } from './users.js'

const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/

/**
 * ADMIN_USERNAME/ADMIN_PASSWORD: creates that admin when no user has the name; an existing user of
 * that name is left as it is (its role and password are the database's business from then on).
 */
export async function ensureAdmin (db: Db, log: AuditLog, username: string, password: string): Promise<boolean> {
  if (!USERNAME.test(username)) throw new ConfigError('ADMIN_USERNAME', 'must be 3-32 of A-Z, a-z, 0-9, _ . -')
  if (password.length < PASSWORD_MIN_LENGTH || password.length > PASSWORD_MAX_LENGTH) {
    throw new ConfigError('ADMIN_PASSWORD', `must be ${PASSWORD_MIN_LENGTH}-${PASSWORD_MAX_LENGTH} characters`)
  }
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
