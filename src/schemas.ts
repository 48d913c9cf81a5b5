import { Type, type TSchema } from '@sinclair/typebox'
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './passwords.js'
import { ROLES } from './db/schema.js'

// Drizzle hands out Date objects; the serializer turns them into ISO strings for this format.
export const DateTime = Type.Unsafe<Date>(Type.String({ format: 'date-time' }))

// Postgres refuses NUL in text, so a string holding one is bad input (400), not a failed insert.
const NO_NUL = '^[^\\u0000]*$'

export const RoleSchema = Type.Union(ROLES.map((role) => Type.Literal(role)), { description: 'user or admin' })

export const Username = Type.String({
  minLength: 3,
  maxLength: 32,
  pattern: '^[A-Za-z0-9_.-]+$',
  description: '3–32 of A–Z, a–z, 0–9, _ . -; unique regardless of case',
})

export const Password = Type.String({
  minLength: PASSWORD_MIN_LENGTH,
  maxLength: PASSWORD_MAX_LENGTH,
  description: `${PASSWORD_MIN_LENGTH}–${PASSWORD_MAX_LENGTH} characters, compared exactly as sent; not among the most common passwords`,
})

export const TaskTitle = Type.String({ minLength: 1, maxLength: 200, pattern: NO_NUL })
export const TaskDescription = Type.String({ maxLength: 5000, pattern: NO_NUL })

export const Uuid = Type.String({ format: 'uuid' })
export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false })

export const Credentials = Type.Object({ username: Username, password: Password }, { additionalProperties: false })

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
})

export const UserEnvelope = Type.Object({ user: UserSchema })

/** What /login answers when a second factor must follow (API.md, "Sign-in with a second factor"). */
export const MfaChallengeSchema = Type.Object({
  mfaRequired: Type.Literal(true),
  methods: Type.Array(Type.Union([Type.Literal('totp'), Type.Literal('recovery_code')])),
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
