import { createHash, timingSafeEqual } from 'node:crypto'

const sha256 = (value: string) => createHash('sha256').update(value).digest()

/**
 * Whether two secrets are equal, in a time that tells nothing about either: both are hashed to 32
 * bytes first, because timingSafeEqual needs equal lengths, and comparing the digests leaks neither
 * the bytes nor the length.
 */
export function sameSecret (presented: string, expected: string): boolean {
  return timingSafeEqual(sha256(presented), sha256(expected))
}
