import { availableParallelism } from 'node:os'
import { hash, verify, type Options } from '@node-rs/argon2'
import pLimit from 'p-limit'
import { dictionary } from '@zxcvbn-ts/language-common'
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './rules.js'

export { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH }

// 19 MiB, 2 passes, 1 lane: OWASP's argon2id floor (Password Storage Cheat Sheet). The async calls
// run on libuv's thread pool, so hashing never blocks the event loop.
export const ARGON2_OPTIONS: Options = {
  algorithm: 2, // Argon2id (the package's const enum cannot be imported under verbatimModuleSyntax)
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
}

// Hashing is CPU-bound: more hashes at once than cores only queue inside libuv's pool (4 threads by
// default), each holding its 19 MiB, and starve the event loop and Postgres of CPU. Extra sign-ins
// wait here instead, costing nothing.
export const HASHING_CONCURRENCY = availableParallelism()
const hashingSlot = pLimit(HASHING_CONCURRENCY)

// zxcvbn-ts ships ~49k leaked passwords ranked by frequency; those short enough are refused by
// length already, so only the rest are kept. Compared case-insensitively: "Password1" is no better.
const commonPasswords = new Set(
  dictionary['passwords-common']
    .filter((word) => word.length >= PASSWORD_MIN_LENGTH)
    .map((word) => word.toLowerCase())
)

export function isCommonPassword (password: string): boolean {
  return commonPasswords.has(password.toLowerCase())
}

export function hashPassword (password: string): Promise<string> {
  return hashingSlot(() => hash(password, ARGON2_OPTIONS))
}

/**
 * Never throws on a malformed stored hash: a broken row is a failed sign-in, not a 500. An account
 * without a password (made by an identity provider) is checked against the decoy instead, so it
 * fails exactly like a wrong password, in the same time.
 */
export async function verifyPassword (storedHash: string | null, password: string): Promise<boolean> {
  if (storedHash === null) {
    await spendDecoyVerification(password)
    return false
  }
  try {
    return await hashingSlot(() => verify(storedHash, password))
  } catch {
    return false
  }
}

// Verified when the username is unknown, so that answer costs one hash too and cannot be told
// apart by its timing. Made once, lazily, with the same parameters as real hashes.
let decoyHash: Promise<string> | undefined
export async function spendDecoyVerification (password: string): Promise<void> {
  decoyHash ??= hashPassword('decoy password that matches nothing')
  await verifyPassword(await decoyHash, password)
}
