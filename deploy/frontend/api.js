import { API_BASE } from './config.js'

/** A failed call: `status` 0 means no answer could be read (code `NETWORK`, or `CORS_REFUSED`). */
export class ApiError extends Error {
  constructor (status, body = {}) {
    super(body.message || `Request failed (${status})`)
    this.name = 'ApiError'
    this.status = status
    this.code = body.code || (status === 0 ? 'NETWORK' : `HTTP_${status}`)
    this.body = body
  }
}

// 401s that a refresh cannot cure: a wrong password is not an expired token.
const NOT_CURABLE = new Set(['BAD_CREDENTIALS', 'REFRESH_INVALID', 'REFRESH_REUSED', 'MFA_INVALID', 'MFA_PENDING_INVALID'])

let sessionEndedListener = () => {}
/** Called once a refresh has failed: the app then shows the sign-in screen. */
export function onSessionEnded (listener) { sessionEndedListener = listener }

let refreshInFlight = null
// Bumped by every successful refresh, so a request that was sent before it and came back 401
// simply retries with the new cookie instead of starting a refresh of its own.
let refreshGeneration = 0

function send (method, path, body) {
  const init = { method, credentials: 'include', headers: { Accept: 'application/json' } }
  // Only a request with a body says what the body is: a body-less POST or DELETE stays simple.
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  return fetch(`${API_BASE}${path}`, init)
}

/**
 * A browser reports a CORS refusal exactly like a network failure. The API's liveness route may be
 * read by any page (it says only "ok"), so an opaque request to it tells the two apart: it comes back
 * when the API is up and only this page's origin was refused.
 */
async function unreadableAnswerCode () {
  try {
    await fetch(`${API_BASE}/api/health`, { mode: 'no-cors', credentials: 'omit', cache: 'no-store' })
    return 'CORS_REFUSED'
  } catch {
    return 'NETWORK'
  }
}

async function readBody (response) {
  if (response.status === 204) return null
  const text = await response.text()
  if (text === '') return null
  try {
    return JSON.parse(text)
  } catch {
    return { message: text }
  }
}

/**
 * One refresh at a time: every call that meets a 401 while a refresh is running waits for that same
 * promise. The server rotates the refresh token on each refresh, so two refreshes from one page
 * would race each other for nothing.
 */
export function refreshSession () {
  refreshInFlight ??= send('POST', '/api/auth/refresh')
    .then((response) => {
      if (response.ok) refreshGeneration += 1
      return response.ok
    }, () => false)
    .finally(() => { refreshInFlight = null })
  return refreshInFlight
}

/**
 * Calls the API with the cookies. On a 401 it refreshes (once, shared) and retries the request
 * once; if the refresh fails the session is over and the sign-in screen takes over.
 * `{ refresh: false }` is for calls where a 401 has another meaning (sign-in, the first /me).
 */
export async function request (method, path, body, { refresh = true } = {}) {
  const generation = refreshGeneration
  let response
  try {
    response = await send(method, path, body)
  } catch {
    throw new ApiError(0, { code: await unreadableAnswerCode() })
  }
  let payload = await readBody(response)
  if (response.status === 401 && refresh && !NOT_CURABLE.has(payload?.code)) {
    const refreshed = generation !== refreshGeneration || await refreshSession()
    if (!refreshed) {
      sessionEndedListener()
      throw new ApiError(401, payload ?? {})
    }
    try {
      response = await send(method, path, body)
    } catch {
      throw new ApiError(0, {})
    }
    payload = await readBody(response)
    if (response.status === 401 && !NOT_CURABLE.has(payload?.code)) sessionEndedListener()
  }
  if (!response.ok) {
    const error = new ApiError(response.status, payload ?? {})
    error.retryAfter = Number(response.headers.get('Retry-After')) || undefined
    throw error
  }
  return payload
}

const query = (params) => {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== null) search.set(key, String(value))
  const text = search.toString()
  return text === '' ? '' : `?${text}`
}
const id = (value) => encodeURIComponent(value)

export const api = {
  register: (username, password) => request('POST', '/api/auth/register', { username, password }, { refresh: false }),
  login: (username, password) => request('POST', '/api/auth/login', { username, password }, { refresh: false }),
  logout: () => request('POST', '/api/auth/logout'),
  logoutAll: () => request('POST', '/api/auth/logout-all'),
  me: () => request('GET', '/api/auth/me'),
  changePassword: (currentPassword, newPassword) => request('POST', '/api/auth/password', { currentPassword, newPassword }),
  sessions: () => request('GET', '/api/auth/sessions'),
  revokeSession: (sessionId) => request('DELETE', `/api/auth/sessions/${id(sessionId)}`),

  // The second step of a sign-in: `{ code }` or `{ recoveryCode }`, with the pending-sign-in cookie.
  verifySecondFactor: (answer) => request('POST', '/api/auth/mfa/verify', answer, { refresh: false }),
  mfaStatus: () => request('GET', '/api/auth/mfa'),
  startTotp: (currentPassword) => request('POST', '/api/auth/mfa/totp', { currentPassword }),
  confirmTotp: (code) => request('POST', '/api/auth/mfa/totp/confirm', { code }),
  disableTotp: (currentPassword, code) => request('POST', '/api/auth/mfa/totp/disable', { currentPassword, code }),
  newRecoveryCodes: (currentPassword, code) => request('POST', '/api/auth/mfa/recovery-codes', { currentPassword, code }),

  listTasks: (cursor, limit = 10) => request('GET', `/api/tasks${query({ limit, cursor })}`),
  createTask: (task) => request('POST', '/api/tasks', task),
  updateTask: (taskId, changes) => request('PATCH', `/api/tasks/${id(taskId)}`, changes),
  deleteTask: (taskId) => request('DELETE', `/api/tasks/${id(taskId)}`),

  listUsers: (cursor, limit = 20) => request('GET', `/api/users${query({ limit, cursor })}`),
  changeRole: (userId, role) => request('PATCH', `/api/users/${id(userId)}`, { role }),
  deleteUser: (userId) => request('DELETE', `/api/users/${id(userId)}`),
}
