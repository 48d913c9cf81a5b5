import { USERNAME_MAX_LENGTH, USERNAME_MIN_LENGTH, isValidUsername } from './rules.js'

/** The claims a username is made from, in order of preference. */
export interface NameClaims {
  preferred_username?: unknown
  name?: unknown
  email?: unknown
}

/**
 * Turns a claim into something the username rule (rules.ts) accepts: accents dropped ("José" →
 * "Jose"), spaces to dots, anything else outside A–Z a–z 0–9 _ . - removed, cut to the maximum.
 * Undefined when too little is left.
 */
export function sanitiseUsername (raw: string): string | undefined {
  const cleaned = raw
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .trim()
    .replace(/\s+/g, '.')
    .replace(/[^A-Za-z0-9_.-]/g, '')
    // Runs of punctuation, and punctuation at the ends, read badly.
    .replace(/[_.-]{2,}/g, (run) => run[0]!)
    .replace(/^[_.-]+|[_.-]+$/g, '')
    .slice(0, USERNAME_MAX_LENGTH)
    .replace(/[_.-]+$/, '')
  return cleaned.length >= USERNAME_MIN_LENGTH && isValidUsername(cleaned) ? cleaned : undefined
}

/** The base name for a new account: the first usable claim, else `user`. Made unique by the caller. */
export function usernameFromClaims (claims: NameClaims): string {
  // An address-shaped claim (Entra's preferred_username is the UPN) gives its local part.
  const localPart = (value: unknown) => typeof value === 'string' ? value.split('@')[0] : undefined
  for (const candidate of [localPart(claims.preferred_username), claims.name, localPart(claims.email)]) {
    if (typeof candidate !== 'string') continue
    const name = sanitiseUsername(candidate)
    if (name !== undefined) return name
  }
  return 'user'
}
