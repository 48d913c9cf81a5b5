import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { issueSecret } from './db/queries/one-time-secrets.js'
import { createBrowserSession, createTokenSession, revokePresentedSession } from './db/queries/sessions.js'
import type { UserRow } from './db/queries/users.js'
import type { SignInMethod } from './db/schema.js'

/** `browser`: cookies (`/login`); `bearer`: an access token in the body, no cookie (`/token`). */
export type SignInClient = 'browser' | 'bearer'

export interface BearerToken { access_token: string, token_type: 'Bearer', expires_in: number }
/** What a finished sign-in answers: the user (cookies set) for a browser, a token for a Bearer client. */
export type SignedInAnswer<C extends SignInClient = SignInClient> = C extends 'browser' ? { user: UserRow } : BearerToken

export type MfaChallenge<C extends SignInClient = SignInClient> = {
  mfaRequired: true
  methods: Array<'totp' | 'recovery_code' | 'passkey'>
} & (C extends 'bearer' ? { mfa_token?: string } : unknown)

/** A pending sign-in waits this long for its code, and dies after this many wrong ones. */
export const MFA_PENDING_TTL_SECONDS = 300
export const MFA_PENDING_MAX_ATTEMPTS = 5

/** The sign-in metric's method label: how the user first proved who they are. */
function signInMetricMethod (method: SignInMethod): 'password' | 'passkey' | 'oidc' {
  return method === 'passkey' || method === 'oidc' ? method : 'password'
}

function clientDetails (request: FastifyRequest) {
  const userAgent = request.headers['user-agent']
  return { userAgent: userAgent === undefined ? null : userAgent.slice(0, 300), ip: request.ip }
}

/**
 * Every way of signing in ends here, once the user has proved who they are (a password alone, a
 * password and a second factor, a recovery code, a passkey, an identity provider): the session
 * row, the audit line, and the answer the client expects (cookies, or a Bearer token).
 */
export async function startSession<C extends SignInClient> (
  app: FastifyInstance, request: FastifyRequest, reply: FastifyReply,
  user: UserRow, client: C, method: SignInMethod
): Promise<SignedInAnswer<C>> {
  const { config } = app
  const details = { ...clientDetails(request), method }
  // A duplicated refresh cookie is not an error here: the sign-in replaces whatever was there.
  const presentedRefresh = client === 'browser' ? (() => { try { return app.readRefreshToken(request) } catch { return undefined } })() : undefined
  const presentedSession = client === 'browser' ? app.readAccessCookieSession(request) : undefined
  const session = await app.db.transaction(async (tx) => {
    // The session this browser held until now ends with the new sign-in, rather than live on unseen.
    const replaced = client === 'browser' ? await revokePresentedSession(tx, { refreshToken: presentedRefresh, sessionId: presentedSession }) : []
    const created = client === 'browser'
      ? await createBrowserSession(tx, user.id, details, config)
      : { ...await createTokenSession(tx, user.id, details, config.accessTokenTtl), refreshToken: undefined }
    await request.audit(tx, 'login', {
      userId: user.id,
      actorId: user.id,
      detail: {
        sessionId: created.sessionId,
        method,
        ...(client === 'bearer' ? { client: 'bearer' } : {}),
        ...(replaced.length === 0 ? {} : { replacedSessionIds: replaced }),
      },
    })
    return created
  })
  app.metrics.signIns.inc({ method: signInMetricMethod(method), outcome: 'success' })
  const accessToken = app.signAccessToken(user, session.sessionId)
  if (client === 'bearer') {
    const answer: BearerToken = { access_token: accessToken, token_type: 'Bearer', expires_in: config.accessTokenTtl }
    return answer as SignedInAnswer<C>
  }
  app.setAuthCookies(reply, { accessToken, ...(session.refreshToken === undefined ? {} : { refreshToken: session.refreshToken }) })
  // This browser has now signed in as this user: the per-account limit no longer stops it.
  app.setDeviceCookie(request, reply, user.id)
  return { user } as SignedInAnswer<C>
}

/**
 * After a right password (or an identity provider's word, `method` 'oidc'): a user without TOTP is
 * signed in; a user with TOTP gets a pending
 * sign-in instead (a one-time secret: 5 minutes, 5 attempts, single use, any instance can finish
 * it), as a cookie for a browser or `mfa_token` for a Bearer client.
 */
export async function afterPassword<C extends SignInClient> (
  app: FastifyInstance, request: FastifyRequest, reply: FastifyReply,
  user: UserRow & { totpOn: boolean }, client: C, method: 'password' | 'oidc' = 'password'
): Promise<SignedInAnswer<C> | MfaChallenge<C>> {
  const { totpOn, ...publicUser } = user
  // A role that must have a second factor (MFA_REQUIRED_ROLES) and has only a passkey: the password
  // alone would meet the rule (user.mfa is true), so the passkey is asked for. It is a complete
  // sign-in on its own: no pending step to finish; a Bearer client, which cannot run the ceremony,
  // gets no token. For other roles a passkey is another way in, and the password stays one.
  const passkeyRequired = !totpOn && publicUser.mfa && app.config.mfaRequiredRoles.includes(publicUser.role)
  if (!totpOn && !passkeyRequired) return startSession(app, request, reply, publicUser, client, method)
  app.metrics.signIns.inc({ method, outcome: 'second_factor_required' })
  if (passkeyRequired) return { mfaRequired: true, methods: ['passkey'] } as MfaChallenge<C>
  const pending = await issueSecret(app.db, {
    kind: 'mfa_pending', userId: user.id, ttlSeconds: MFA_PENDING_TTL_SECONDS, data: { client },
  })
  const methods: MfaChallenge['methods'] = ['totp', 'recovery_code']
  if (client === 'bearer') return { mfaRequired: true, mfa_token: pending, methods } as MfaChallenge<C>
  app.setMfaPendingCookie(reply, pending)
  return { mfaRequired: true, methods } as MfaChallenge<C>
}
