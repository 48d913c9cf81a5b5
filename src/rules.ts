// The rules that more than one room checks, written once. The HTTP schemas (src/schemas.ts), the
// CLI, the configuration and the database queries all read them from here.

/** API.md: a username is 3–32 of A–Z, a–z, 0–9, `_`, `.`, `-`; unique regardless of case. */
export const USERNAME_MIN_LENGTH = 3
export const USERNAME_MAX_LENGTH = 32
export const USERNAME_CHARACTERS = 'A-Za-z0-9_.-'
export const USERNAME_RULE_IN_WORDS = '3–32 of A–Z, a–z, 0–9, _ . -'
const USERNAME = new RegExp(`^[${USERNAME_CHARACTERS}]{${USERNAME_MIN_LENGTH},${USERNAME_MAX_LENGTH}}$`)

export function isValidUsername (username: string): boolean {
  return USERNAME.test(username)
}

/** API.md: a password is 8–256 characters, compared exactly as sent. */
export const PASSWORD_MIN_LENGTH = 8
export const PASSWORD_MAX_LENGTH = 256

export function passwordLengthProblem (password: string): string | undefined {
  return password.length < PASSWORD_MIN_LENGTH || password.length > PASSWORD_MAX_LENGTH
    ? `must be ${PASSWORD_MIN_LENGTH}–${PASSWORD_MAX_LENGTH} characters`
    : undefined
}

/** A UUID in its canonical text form (any version), as Postgres prints it. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function isUuid (value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value)
}
