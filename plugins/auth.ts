import { randomUUID } from 'node:crypto'
import cookie from '@fastify/cookie'
import jwt from '@fastify/jwt'
import type { CookieSerializeOptions } from '@fastify/cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Role } from '../src/db/schema.js'
import { prepareActiveSessionUser, type Caller } from '../src/db/queries/sessions.js'
import { recordAuditEvent } from '../src/db/queries/audit.js'
import { ForbiddenRole, MfaEnrolmentRequired, SessionRevoked, TokenExpired, TokenInvalid, TokenMissing } from '../src/errors.js'
import { createSecretBox, type SecretBox } from '../src/secret-box.js'

/** What an access token says. `typ` keeps any other token we might ever sign from passing as one. */
export interface AccessClaims { sub: string, sid: string, role: Role, typ: 'access', jti: string }
/** Who is calling, as the database says now (the role is never taken from the token). */
export interface AuthUser { id: string, username: string, role: Role, createdAt: Date, mfa: boolean, sessionId: string }

declare module '@fastify/jwt' {
  interface FastifyJWT { payload: AccessClaims, user: AuthUser }
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller
  }
  interface FastifyInstance {
    /** A preHandler (or onRequest hook): 401 unless signed in with a live session, 403 unless the role fits. */
    tokenRequired: (roles?: readonly Role[]) => (request: FastifyRequest) => Promise<void>
    /**
     * Half of tokenRequired, for routes whose every query checks the session itself in the same
     * round trip (the tasks routes): 401 unless the access token is valid; sets request.caller.
     */
    tokenVerified: () => (request: FastifyRequest) => Promise<void>
    signAccessToken: (user: { id: string, role: Role }, sessionId: string) => string
    setAuthCookies: (reply: FastifyReply, tokens: { accessToken: string, refreshToken?: string }) => void
    clearAuthCookies: (reply: FastifyReply) => void
    /** The pending sign-in cookie between a right password and its second factor. */
    setMfaPendingCookie: (reply: FastifyReply, value: string) => void
    clearMfaPendingCookie: (reply: FastifyReply) => void
    /** Seals and opens TOTP secrets with ENCRYPTION_KEY. */
    secretBox: SecretBox
    /**
     * Throws 403 MFA_ENROLMENT_REQUIRED when MFA_REQUIRED_ROLES names the user's role (as stored
     * now), they have no second factor, and the route is not one they need to get one.
     */
    assertSecondFactorPolicy: (request: FastifyRequest, user: { role: Role, mfa: boolean }) => void
  }
}

/**
 * What a user who must enrol may still reach (API.md, "Managing second factors"): who they are,
 * the enrolment routes, and the way out. Matched on the route pattern, never the raw URL.
 */
function isEnrolmentRoute (route: string): boolean {
  return route === '/api/auth/me' || route === '/api/auth/logout' || route === '/api/auth/refresh' ||
    route === '/api/auth/mfa' || route.startsWith('/api/auth/mfa/') ||
    route === '/api/auth/passkeys' || route.startsWith('/api/auth/passkeys/')
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export default fp(async (app) => {
  const { config } = app

  await app.register(cookie)
  await app.register(jwt, {
    secret: config.jwtSecret,
    cookie: { cookieName: config.accessCookieName, signed: false },
    sign: { algorithm: 'HS256', iss: config.issuer, aud: config.audience, expiresIn: `${config.accessTokenTtl}s` },
    // Without `algorithms` the verifier accepts whatever the key allows: pin HS256. With a string
    // secret, header fields such as kid, jku, x5u or jwk are never used to pick a key.
    verify: {
      algorithms: ['HS256'],
      allowedIss: config.issuer,
      allowedAud: config.audience,
      requiredClaims: ['exp', 'iat', 'sub', 'sid', 'role', 'typ', 'jti', 'iss', 'aud'],
    },
  })

  /** Verifies with the current key, then with each previous one (key rotation: verify only). */
  function verifyToken (token: string): AccessClaims {
    try {
      return app.jwt.verify<AccessClaims>(token)
    } catch (error) {
      if ((error as { code?: string }).code !== 'FAST_JWT_INVALID_SIGNATURE') throw error
      for (const key of config.jwtPreviousSecrets) {
        try {
          return app.jwt.verify<AccessClaims>(token, { key })
        } catch (previousError) {
          if ((previousError as { code?: string }).code !== 'FAST_JWT_INVALID_SIGNATURE') throw previousError
        }
      }
      throw error
    }
  }

  /** The Bearer header when there is one (non-browser clients), else the access cookie. */
  function readToken (request: FastifyRequest): string | undefined {
    const header = request.headers.authorization
    if (header !== undefined && /^Bearer(\s|$)/i.test(header)) return header.slice(6).trim()
    return request.cookies[config.accessCookieName]
  }

  function readClaims (request: FastifyRequest): AccessClaims {
    const token = readToken(request)
    if (token === undefined) throw new TokenMissing()
    if (token === '') throw new TokenInvalid()
    let claims: AccessClaims
    try {
      claims = verifyToken(token)
    } catch (error) {
      if ((error as { code?: string }).code === 'FAST_JWT_EXPIRED') throw new TokenExpired()
      throw new TokenInvalid()
    }
    if (claims.typ !== 'access' || typeof claims.sub !== 'string' || typeof claims.sid !== 'string' ||
      !UUID.test(claims.sub) || !UUID.test(claims.sid)) {
      throw new TokenInvalid()
    }
    return claims
  }

  const activeSessionUser = prepareActiveSessionUser(app.db)

  app.decorateRequest('caller', null as unknown as Caller)
  app.decorate('tokenVerified', () => async function tokenVerified (request: FastifyRequest) {
    const claims = readClaims(request)
    request.caller = { userId: claims.sub, sessionId: claims.sid }
  })

  app.decorate('tokenRequired', (roles?: readonly Role[]) => async function tokenRequired (request: FastifyRequest) {
    const claims = readClaims(request)
    // The token only says who signed in. Whether the session is alive, and which role the user
    // holds now, is the database's answer: one query, on every request, on every instance.
    const [user] = await activeSessionUser.execute({ sessionId: claims.sid, userId: claims.sub })
    if (!user) throw new SessionRevoked()
    request.user = user
    app.assertSecondFactorPolicy(request, user)
    if (roles !== undefined && !roles.includes(user.role)) {
      await recordAuditEvent(app.db, request.log, {
        type: 'access_denied',
        userId: user.id,
        actorId: user.id,
        ip: request.ip,
        detail: { method: request.method, route: request.routeOptions.url ?? request.url, role: user.role },
      })
      throw new ForbiddenRole()
    }
  })

  const requiredRoles = new Set(config.mfaRequiredRoles)
  app.decorate('assertSecondFactorPolicy', (request: FastifyRequest, user: { role: Role, mfa: boolean }) => {
    if (!requiredRoles.has(user.role) || user.mfa) return
    if (isEnrolmentRoute(request.routeOptions.url ?? '')) return
    throw new MfaEnrolmentRequired()
  })

  app.decorate('secretBox', createSecretBox(config.encryptionKey, config.encryptionPreviousKeys))

  app.decorate('signAccessToken', (user: { id: string, role: Role }, sessionId: string) =>
    app.jwt.sign({ sub: user.id, sid: sessionId, role: user.role, typ: 'access', jti: randomUUID() }))

  // SameSite=None so a frontend on another site gets the cookies on credentialed fetches; it needs
  // Secure, and Chromium sends such a cookie cross-site only when Partitioned (see README). Without
  // Secure (plain-HTTP development) browsers refuse None, so Lax it is.
  const baseCookie: CookieSerializeOptions = {
    httpOnly: true,
    secure: config.cookieSecure,
    sameSite: config.cookieSecure ? 'none' : 'lax',
    ...(config.cookiePartitioned ? { partitioned: true } : {}),
  }
  const accessCookie: CookieSerializeOptions = { ...baseCookie, path: '/', maxAge: config.accessTokenTtl }
  // The refresh token travels only to /api/auth, never with ordinary API calls.
  const refreshCookie: CookieSerializeOptions = { ...baseCookie, path: '/api/auth', maxAge: config.refreshTokenTtl }

  app.decorate('setAuthCookies', (reply: FastifyReply, tokens: { accessToken: string, refreshToken?: string }) => {
    reply.setCookie(config.accessCookieName, tokens.accessToken, accessCookie)
    if (tokens.refreshToken !== undefined) reply.setCookie(config.refreshCookieName, tokens.refreshToken, refreshCookie)
  })

  // Clearing repeats the attributes the cookie was set with; a browser only replaces a cookie whose
  // name, path and partition match.
  app.decorate('clearAuthCookies', (reply: FastifyReply) => {
    reply.setCookie(config.accessCookieName, '', { ...accessCookie, maxAge: 0 })
    reply.setCookie(config.refreshCookieName, '', { ...refreshCookie, maxAge: 0 })
  })

  // Five minutes to type the code; only the auth routes ever see it.
  const mfaPendingCookie: CookieSerializeOptions = { ...baseCookie, path: '/api/auth', maxAge: 300 }
  app.decorate('setMfaPendingCookie', (reply: FastifyReply, value: string) => {
    reply.setCookie(config.mfaPendingCookieName, value, mfaPendingCookie)
  })
  app.decorate('clearMfaPendingCookie', (reply: FastifyReply) => {
    reply.setCookie(config.mfaPendingCookieName, '', { ...mfaPendingCookie, maxAge: 0 })
  })
}, { name: 'auth', dependencies: ['config', 'db'] })
