// Error codes from the API (see API.md) turned into words a person understands. The API's own
// message is a fallback only: it is written for developers.

const MESSAGES = {
  NETWORK: 'Can’t reach the server. Check your connection and try again.',
  // The API is up but did not let this page read its answer (api.js tells the two apart).
  CORS_REFUSED: 'The server is up but refuses this page’s address. (Running it yourself? Add this page’s origin to the API’s CORS_ORIGINS.)',
  BAD_CREDENTIALS: 'That username and password don’t match. Check both and try again.',
  USERNAME_TAKEN: 'That username is already taken. Please choose another one.',
  PASSWORD_TOO_COMMON: 'That password is one of the most common ones and easy to guess. Please choose another.',
  PASSWORD_UNCHANGED: 'The new password must be different from your current one.',
  RATE_LIMITED: 'Too many attempts. Please wait a minute, then try again.',
  TOKEN_MISSING: 'Please sign in to continue.',
  TOKEN_INVALID: 'Your session has ended. Please sign in again.',
  TOKEN_EXPIRED: 'Your session has ended. Please sign in again.',
  SESSION_REVOKED: 'Your session has ended. Please sign in again.',
  REFRESH_INVALID: 'Your session has ended. Please sign in again.',
  REFRESH_REUSED: 'For your safety this session was ended. Please sign in again.',
  FORBIDDEN_ROLE: 'You don’t have permission to do that.',
  CSRF_ORIGIN: 'The server refused a request from this page’s address. (Is this origin listed in CORS_ORIGINS?)',
  LAST_ADMIN: 'There must always be at least one admin, so this change isn’t allowed.',
  TASK_NOT_FOUND: 'That task no longer exists. It may have been deleted in another window.',
  USER_NOT_FOUND: 'That user no longer exists.',
  SESSION_NOT_FOUND: 'That session has already ended.',
  MFA_INVALID: 'That code isn’t right, or it was already used. Wait for the next code and try again.',
  MFA_PENDING_INVALID: 'That sign-in took too long or had too many wrong codes. Please sign in again.',
  MFA_ENROLMENT_REQUIRED: 'Your role requires two-step sign-in. Set it up on the Account page first.',
  TOTP_ALREADY_ON: 'Two-step sign-in is already on.',
  TOTP_NOTHING_TO_CONFIRM: 'Start the set-up again: there is nothing to confirm.',
  TOTP_NOT_ON: 'Two-step sign-in is not on.',
  BAD_CURSOR: 'The list changed while you were paging. Please reload it.',
  INVALID_VALUE: 'Some of what you entered can’t be saved. Please check it.',
  DATABASE_UNAVAILABLE: 'The service is having a short break. Please try again in a moment.',
  INTERNAL_ERROR: 'Something went wrong on our side. Please try again.',
}

// Validation errors name the field (`body/password must NOT have fewer than 8 characters`).
const FIELD_MESSAGES = {
  username: 'A username is 3 to 32 characters: letters, digits, dots, dashes or underscores.',
  password: 'A password needs 8 to 256 characters.',
  newPassword: 'The new password needs 8 to 256 characters.',
  currentPassword: 'Please enter your current password.',
  email: 'Enter an e-mail address like name@example.com.',
  code: 'Enter the 6-digit code from your authenticator app (or a recovery code where offered).',
  recoveryCode: 'Enter one of your recovery codes, as written.',
  title: 'A task needs a title: up to 200 characters, and not only spaces.',
  description: 'A description can be at most 5,000 characters.',
  role: 'Please choose a valid role.',
}

function validationMessage (message = '') {
  const match = /(?:body|querystring|params)\/(\w+)/.exec(message) ?? /property '(\w+)'/.exec(message)
  return (match && FIELD_MESSAGES[match[1]]) || 'Some of what you entered isn’t valid. Please check the form.'
}

/** A sentence for any error thrown by api.js (or anything else). */
export function friendlyMessage (error) {
  const code = error?.code
  if (code === 'FST_ERR_VALIDATION') return validationMessage(error.body?.message)
  if (code && MESSAGES[code]) {
    if (code === 'RATE_LIMITED' && error.retryAfter) {
      return `Too many attempts. Please wait ${error.retryAfter} seconds, then try again.`
    }
    return MESSAGES[code]
  }
  switch (error?.status) {
    case 400: return 'Some of what you entered isn’t valid. Please check the form.'
    case 401: return MESSAGES.TOKEN_EXPIRED
    case 403: return MESSAGES.FORBIDDEN_ROLE
    case 404: return 'That item no longer exists.'
    case 409: return 'That conflicts with something that already exists.'
    case 413: return 'That’s too long to save.'
    case 429: return MESSAGES.RATE_LIMITED
    case 503: return MESSAGES.DATABASE_UNAVAILABLE
    default: return MESSAGES.INTERNAL_ERROR
  }
}

/** friendlyMessage for a form that asks for the current password: there, bad credentials mean that field. */
export function currentPasswordMessage (error) {
  return error?.code === 'BAD_CREDENTIALS' ? 'Your current password isn’t right.' : friendlyMessage(error)
}
