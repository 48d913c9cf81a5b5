import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto'

/**
 * Encrypts small secrets (TOTP keys) for storage: AES-256-GCM under a key derived from
 * ENCRYPTION_KEY, so a copy of the database alone yields nothing usable. Each value is bound to
 * its owner (the user id is the additional authenticated data): a ciphertext copied onto another
 * user's row fails to decrypt instead of giving that user someone else's factor.
 *
 * Stored form: `v1.<key id>.<iv>.<tag>.<ciphertext>` (base64url). The key id names which key
 * sealed it, so that after a rotation the old key (ENCRYPTION_PREVIOUS_KEYS) still opens older
 * values until they are re-sealed.
 */
export interface SecretBox {
  seal (plaintext: string, owner: string): string
  open (sealed: string, owner: string): string
  /** True when the value was sealed with an older key and should be re-sealed. */
  isStale (sealed: string): boolean
}

interface Key { id: string, bytes: Buffer }

const VERSION = 'v1'

// HKDF turns any ≥ 32-byte string (base64, hex, a passphrase) into exactly 32 key bytes, and the
// `info` label keeps this key apart from any other use of the same variable.
function deriveKey (material: string): Key {
  const bytes = Buffer.from(hkdfSync('sha256', Buffer.from(material, 'utf8'), Buffer.alloc(0), 'cookie-auth-api/secret-box/v1', 32))
  return { id: createHash('sha256').update(bytes).digest('hex').slice(0, 8), bytes }
}

export class SecretBoxError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'SecretBoxError'
  }
}

export function createSecretBox (currentKey: string, previousKeys: readonly string[] = []): SecretBox {
  const current = deriveKey(currentKey)
  const keys = new Map([current, ...previousKeys.map(deriveKey)].map((key) => [key.id, key]))

  return {
    seal (plaintext, owner) {
      // 96-bit random nonce, as GCM expects; a key seals far fewer than the 2^32 values NIST allows.
      const iv = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', current.bytes, iv)
      cipher.setAAD(Buffer.from(owner, 'utf8'))
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
      return [VERSION, current.id, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ciphertext.toString('base64url')].join('.')
    },
    open (sealed, owner) {
      const [version, keyId, iv, tag, ciphertext] = sealed.split('.')
      if (version !== VERSION || keyId === undefined || iv === undefined || tag === undefined || ciphertext === undefined) {
        throw new SecretBoxError('not a sealed value')
      }
      const key = keys.get(keyId)
      if (key === undefined) throw new SecretBoxError('sealed with a key that is neither ENCRYPTION_KEY nor in ENCRYPTION_PREVIOUS_KEYS')
      try {
        const decipher = createDecipheriv('aes-256-gcm', key.bytes, Buffer.from(iv, 'base64url'))
        decipher.setAAD(Buffer.from(owner, 'utf8'))
        decipher.setAuthTag(Buffer.from(tag, 'base64url'))
        return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8')
      } catch {
        throw new SecretBoxError('the sealed value was altered or belongs to another owner')
      }
    },
    isStale (sealed) {
      return sealed.split('.')[1] !== current.id
    },
  }
}
