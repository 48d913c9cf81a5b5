import createError from '@fastify/error'

// Clients match on `code`: these strings are part of the API and never change.
export const TokenMissing = createError('TOKEN_MISSING', 'Sign in first', 401)
export const TokenInvalid = createError('TOKEN_INVALID', 'The access token is not valid', 401)
export const TokenExpired = createError('TOKEN_EXPIRED', 'The access token has expired', 401)
export const SessionRevoked = createError('SESSION_REVOKED', 'This session has ended; sign in again', 401)
export const RefreshInvalid = createError('REFRESH_INVALID', 'The refresh token is missing, unknown or expired', 401)
export const RefreshReused = createError('REFRESH_REUSED', 'This refresh token was already used; the session has been ended', 401)
export const BadCredentials = createError('BAD_CREDENTIALS', 'Wrong username or password', 401)
export const WrongPassword = createError('BAD_CREDENTIALS', 'The current password is wrong', 401)
export const ForbiddenRole = createError('FORBIDDEN_ROLE', 'Your role does not allow this', 403)
export const CsrfOrigin = createError('CSRF_ORIGIN', 'Cross-site request refused', 403)
export const MfaInvalid = createError('MFA_INVALID', 'The code is wrong or was already used', 401)
export const MfaPendingInvalid = createError('MFA_PENDING_INVALID', 'This sign-in has expired or was already finished; sign in again', 401)
export const MfaEnrolmentRequired = createError('MFA_ENROLMENT_REQUIRED', 'Your role requires a second factor: set one up first', 403)
export const TotpAlreadyOn = createError('TOTP_ALREADY_ON', 'Two-step sign-in is already on; turn it off first', 409)
export const NothingToConfirm = createError('TOTP_NOTHING_TO_CONFIRM', 'There is no pending two-step set-up to confirm', 409)
// One answer for every way a passkey ceremony can fail (unknown key, wrong origin, expired challenge,
// bad signature…): which check failed is for the audit log, not for a prober.
export const PasskeyInvalid = createError('PASSKEY_INVALID', 'The passkey could not be verified; try again', 401)
export const PasskeyNotFound = createError('PASSKEY_NOT_FOUND', 'Passkey not found', 404)
export const TotpNotOn = createError('TOTP_NOT_ON', 'Two-step sign-in is not on', 409)
export const OidcFailed = createError('OIDC_FAILED', 'This sign-in code is unknown, expired or already used; sign in again', 401)
export const OidcNotStartedHere = createError('OIDC_FAILED', 'This sign-in was not started in this browser; sign in again', 401)
export const OidcLinkFailed = createError('OIDC_FAILED', 'The identity could not be linked: sign in as the account that started the linking, or it belongs to another account', 401)
export const ProviderNotFound = createError('OIDC_PROVIDER_NOT_FOUND', 'No such identity provider', 404)
export const IdentityNotFound = createError('IDENTITY_NOT_FOUND', 'Identity not found', 404)
export const LastWayToSignIn = createError('LAST_SIGN_IN_METHOD', 'This is your last way to sign in: set a password or link another identity first', 409)
export const PasswordAlreadySet = createError('PASSWORD_ALREADY_SET', 'This account has a password already; change it with POST /api/auth/password', 409)

export const UsernameTaken = createError('USERNAME_TAKEN', 'That username is taken', 409)
export const CommonPassword = createError('PASSWORD_TOO_COMMON', 'That password is among the most common ones; choose another', 400)
export const SamePassword = createError('PASSWORD_UNCHANGED', 'The new password must differ from the current one', 400)
export const LastAdmin = createError('LAST_ADMIN', 'This would leave no admin', 409)
export const BadCursor = createError('BAD_CURSOR', 'The cursor is not valid', 400)
export const TaskNotFound = createError('TASK_NOT_FOUND', 'Task not found', 404)
export const UserNotFound = createError('USER_NOT_FOUND', 'User not found', 404)
export const SessionNotFound = createError('SESSION_NOT_FOUND', 'Session not found', 404)

export const DatabaseUnavailable = createError('DATABASE_UNAVAILABLE', 'The database is unavailable; try again shortly', 503)
export const InternalError = createError('INTERNAL_ERROR', 'Internal Server Error', 500)

/** SQLSTATE of a Postgres error, looking through the wrappers Drizzle puts around driver errors. */
export function sqlState (error: unknown): string | undefined {
  for (let current = error, depth = 0; current instanceof Object && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

// postgres.js's own connection error codes, and node's socket errors.
const CONNECTION_ERRORS = new Set([
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', 'QUERY_TIMEOUT',
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
])

/**
 * True for failures that mean "the database is not there right now", which deserve a 503 the client
 * may retry, not a 500: lost connections, timeouts, a database starting or shutting down.
 */
export function isDatabaseUnavailable (error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Object && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string') {
      if (CONNECTION_ERRORS.has(code)) return true
      // 08: connection exception; 57P0x: shutdown / cannot connect now; 53300: too many connections;
      // 57014: statement timeout.
      if (/^08/.test(code) || /^57P0/.test(code) || code === '53300' || code === '57014') return true
    }
    current = (current as { cause?: unknown }).cause
  }
  return false
}

export const RateLimited = createError('RATE_LIMITED', 'Too many requests; try again in %s', 429)

export const Overloaded = createError('OVERLOADED', 'The server is overloaded; try again shortly', 503)

export const MetricsTokenInvalid = createError('METRICS_TOKEN_INVALID', 'A valid metrics token is required', 401)

export const EmailTokenInvalid = createError('EMAIL_TOKEN_INVALID', 'This confirmation link is not valid: it expired, was already used, or a newer one was sent', 401)
export const ResetTokenInvalid = createError('RESET_TOKEN_INVALID', 'This reset link is not valid: it expired, was already used, or a newer one was sent', 401)
export const EmailDisabled = createError('EMAIL_DISABLED', 'This server sends no mail, so an account cannot have an e-mail address here', 400)
