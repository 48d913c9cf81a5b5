import { Type, type TSchema } from '@sinclair/typebox'
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './passwords.js'
import { ROLES } from './db/schema.js'
import { USERNAME_CHARACTERS, USERNAME_MAX_LENGTH, USERNAME_MIN_LENGTH, USERNAME_RULE_IN_WORDS } from './rules.js'

// Drizzle hands out Date objects; the serializer turns them into ISO strings for this format.
export const DateTime = Type.Unsafe<Date>(Type.String({ format: 'date-time' }))

// Postgres refuses NUL in text, so a string holding one is bad input (400), not a failed insert.
const NO_NUL = '^[^\\u0000]*$'
// A title must show something: at least one character that is neither white space nor invisible
// (zero-width space and joiners, word joiner). Titles are trimmed before they are stored.
// (A look-ahead anchored at the start, so matching stays linear in the length.)
const VISIBLE_NO_NUL = '^(?![\\s\\u200B-\\u200D\\u2060]*$)[^\\u0000]*$'
const USERNAME_PATTERN = `^[${USERNAME_CHARACTERS}]+$`

/** Each pattern's rule in words, for validation messages (a raw regex helps nobody). */
export const PATTERN_RULES: ReadonlyMap<string, string> = new Map([
  [NO_NUL, 'must not contain a NUL character'],
  [VISIBLE_NO_NUL, 'must contain at least one visible character (and no NUL character)'],
  [USERNAME_PATTERN, 'may hold only the letters A–Z and a–z, the digits 0–9, and _ . -'],
])

export const RoleSchema = Type.Union(ROLES.map((role) => Type.Literal(role)), { description: 'user or admin' })

export const Username = Type.String({
  minLength: USERNAME_MIN_LENGTH,
  maxLength: USERNAME_MAX_LENGTH,
  pattern: USERNAME_PATTERN,
  description: `${USERNAME_RULE_IN_WORDS}; unique regardless of case`,
})

export const Password = Type.String({
  minLength: PASSWORD_MIN_LENGTH,
  maxLength: PASSWORD_MAX_LENGTH,
  description: `${PASSWORD_MIN_LENGTH}–${PASSWORD_MAX_LENGTH} characters, compared exactly as sent; not among the most common passwords`,
})

export const TaskTitle = Type.String({ minLength: 1, maxLength: 200, pattern: VISIBLE_NO_NUL, description: '1–200 characters with at least one visible one; stored trimmed' })
export const TaskDescription = Type.String({ maxLength: 5000, pattern: NO_NUL })

export const Uuid = Type.String({ format: 'uuid' })
export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false })

export const Credentials = Type.Object({ username: Username, password: Password }, { additionalProperties: false })

/** An address as a mail server takes it (RFC 5321 caps a path at 254 characters); compared without regard to case. */
export const EmailAddress = Type.String({ format: 'email', minLength: 3, maxLength: 254, description: 'an e-mail address' })

export const Registration = Type.Object({
  username: Username,
  password: Password,
  email: Type.Optional(EmailAddress),
}, { additionalProperties: false })

/** Paging query shared by every list: an opaque cursor from the previous page's `nextCursor`. */
export const PageQuery = {
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'nextCursor of the previous page' })),
}

export const UserSchema = Type.Object({
  id: Uuid,
  username: Type.String(),
  role: RoleSchema,
  createdAt: DateTime,
  mfa: Type.Boolean({ description: 'a second factor (TOTP, or a passkey) is set up' }),
  email: Type.Union([Type.String({ format: 'email' }), Type.Null()], { description: 'the verified address, or null' }),
  emailVerified: Type.Boolean({ description: 'the account has a verified address' }),
})

export const UserEnvelope = Type.Object({ user: UserSchema })

/** What /login answers when a second factor must follow (API.md, "Sign-in with a second factor"). */
export const MfaChallengeSchema = Type.Object({
  mfaRequired: Type.Literal(true),
  methods: Type.Array(Type.Union([Type.Literal('totp'), Type.Literal('recovery_code'), Type.Literal('passkey')]), {
    description: '`totp` and `recovery_code`: finish with POST /api/auth/mfa/verify; `passkey` alone: the account\'s second factor is a passkey, sign in with it (POST /api/auth/passkeys/login)',
  }),
})

export const BearerAnswer = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'seconds' }),
})

/** A 204 answer: the serializer sends nothing. */
export const NoContent = Type.Null({ description: 'No content' })

/** OpenAPI security for routes behind tokenRequired: the access cookie or a Bearer token. */
export const signedIn = [{ cookieAuth: [] }, { bearerAuth: [] }]

/** A keyset page of items: `nextCursor` is null on the last page. */
export const Page = <T extends TSchema>(item: T) => Type.Object({ items: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) })

/** Every failure's body (API.md: Fastify's error shape with a stable `code`). */
export const ErrorBody = Type.Object({
  statusCode: Type.Integer(),
  error: Type.String(),
  message: Type.String(),
  code: Type.Optional(Type.String()),
})

const RETRY_AFTER = { 'Retry-After': { type: 'integer', description: 'seconds to wait before trying again' } }

/**
 * Documented failures for a route's `response`: status → the codes it may carry, in words. The body
 * is `ErrorBody` (the same shape every failure has, so serialising through it changes nothing); 429
 * and 503 name their Retry-After header. The generic ones (400 validation, 401 for signed-in routes,
 * 403 CSRF on state changes, 429, 503) are added to every route by plugins/docs.ts; routes add theirs.
 */
export function failures (described: Record<number, string>): Record<number, TSchema> {
  const responses: Record<number, TSchema> = {}
  for (const [status, description] of Object.entries(described)) {
    const code = Number(status)
    responses[code] = Type.Object(ErrorBody.properties, {
      description,
      ...(code === 429 || code === 503 ? { headers: RETRY_AFTER } : {}),
    })
  }
  return responses
}

/** The session's two cookies, as the OpenAPI descriptions name them. */
export const SIGNED_IN_COOKIES = 'the access cookie (`__Host-access_token`) and the refresh cookie (`__Secure-refresh_token`; both without the prefix when COOKIE_SECURE=false), HttpOnly'

/** A success answer that sets the auth cookies, documented as its Set-Cookie header. */
export function settingCookies<T extends TSchema> (schema: T, cookies: string): T {
  return { ...schema, headers: { 'Set-Cookie': { type: 'string', description: cookies } } }
}

/** OpenAPI security for a route that reads the refresh cookie (see plugins/docs.ts). */
export const refreshCookie = [{ refreshCookie: [] }]
