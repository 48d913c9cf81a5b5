import { createHash, randomBytes } from 'node:crypto'
import { generateSecret, generateURI, verify } from 'otplib'
import type { Db } from './db/client.js'
import { claimTotpStep, findTotp, useRecoveryCode } from './db/queries/mfa.js'
import type { SecretBox } from './secret-box.js'

/** RFC 6238 as every authenticator app reads it: SHA-1, 6 digits, 30-second steps. */
const PERIOD = 30
export const TOTP_CODE_PATTERN = '^[0-9]{6}$'
export const RECOVERY_CODE_COUNT = 10
const ISSUER = 'cookie-auth-api'

export type SecondFactorUsed = 'totp' | 'recovery_code'

const TOTP_CODE = new RegExp(TOTP_CODE_PATTERN)

/** Which kind of second factor `code` is by its shape: six digits are a TOTP code, anything else a recovery code. */
export function secondFactorKindOf (code: string): SecondFactorUsed {
  return TOTP_CODE.test(code) ? 'totp' : 'recovery_code'
}

/** A fresh base32 secret: 20 random bytes (160 bits), RFC 4226's recommended length. */
export function newTotpSecret (): string {
  return generateSecret({ length: 20 })
}

export function otpauthUrl (username: string, secret: string): string {
  return generateURI({ issuer: ISSUER, label: username, secret, period: PERIOD, digits: 6, algorithm: 'sha1' })
}

/**
 * The time step the code belongs to, if it is right for the step now or one either side (a phone
 * clock a little off, a code typed as it turned over), else undefined. Whether that step was
 * already used is the database's question (claimTotpStep).
 */
export async function matchTotpStep (secret: string, code: string): Promise<number | undefined> {
  if (secondFactorKindOf(code) !== 'totp') return undefined
  // A tolerance of one period each way covers exactly the steps before and after the current one.
  const result = await verify({ secret, token: code, period: PERIOD, digits: 6, algorithm: 'sha1', epochTolerance: PERIOD })
  return result.valid && 'timeStep' in result ? result.timeStep : undefined
}

// Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or off paper is not misread.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'

/**
 * Ten codes of 24 base32 characters each: 120 random bits, above the 112 bits from which ASVS
 * 6.5.2 accepts a fast unsalted hash, so each is found by its SHA-256 in one indexed update
 * instead of ten slow argon2 comparisons. Shown as six groups of four.
 */
export function newRecoveryCodes (): string[] {
  return Array.from({ length: RECOVERY_CODE_COUNT }, () => {
    const bytes = randomBytes(15) // 120 bits = 24 × 5
    let bits = 0n
    for (const byte of bytes) bits = (bits << 8n) | BigInt(byte)
    let code = ''
    for (let i = 0; i < 24; i++) {
      code = ALPHABET[Number(bits & 31n)]! + code
      bits >>= 5n
    }
    return code.match(/.{4}/g)!.join('-')
  })
}

/** Case, spaces and dashes do not matter; neither do the letters people confuse with digits. */
export function normalizeRecoveryCode (input: string): string {
  return input.toLowerCase().replace(/[\s-]/g, '').replace(/[il]/g, '1').replace(/o/g, '0')
}

export function hashRecoveryCode (code: string): string {
  return createHash('sha256').update(normalizeRecoveryCode(code)).digest('hex')
}

/**
 * Checks a second factor for a user whose TOTP is on: a 6-digit code (accepted once per time step,
 * even when sent twice at once) or a recovery code (used up, even when sent twice at once).
 * Returns what was used, or undefined when the code is wrong, replayed or TOTP is not on.
 *
 * The password-reset flow calls this too, so a reset never skips the second factor.
 */
export async function verifyTotpOrRecoveryCode (db: Db, box: SecretBox, userId: string, code: string): Promise<SecondFactorUsed | undefined> {
  const totp = await findTotp(db, userId)
  if (totp === undefined || !totp.enabled) return undefined
  if (secondFactorKindOf(code) === 'totp') {
    return await verifyTotpCode(db, box, userId, totp.sealedSecret, code, true) ? 'totp' : undefined
  }
  return await useRecoveryCode(db, userId, hashRecoveryCode(code)) ? 'recovery_code' : undefined
}

/** A TOTP code against the user's stored (sealed) secret; `enabled` false: an enrolment's first code. */
export async function verifyTotpCode (db: Db, box: SecretBox, userId: string, sealedSecret: string, code: string, enabled: boolean): Promise<boolean> {
  const step = await matchTotpStep(box.open(sealedSecret, userId), code)
  if (step === undefined) return false
  return claimTotpStep(db, userId, step, enabled)
}
