import { createHmac, randomBytes, randomUUID } from 'node:crypto'
import cookie, { Signer } from '@fastify/cookie'
import jwt from '@fastify/jwt'
import type { CookieSerializeOptions } from '@fastify/cookie'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Role } from '../src/db/schema.js'
import { prepareActiveSessionUser, type Caller } from '../src/db/queries/sessions.js'
import type { UserRow } from '../src/db/queries/users.js'
import { ForbiddenRole, MfaEnrolmentRequired, RefreshInvalid, SessionRevoked, TokenExpired, TokenInvalid, TokenMissing } from '../src/errors.js'
import { isUuid } from '../src/rules.js'
import { createSecretBox, type SecretBox } from '../src/secret-box.js'

/** What an access token says. `typ` keeps any other token we might ever sign from passing as one. */
export interface AccessClaims { sub: string, sid: string, role: Role, typ: 'access', jti: string }
/** Who is calling, as the database says now (the role is never taken from the token). */
export type AuthUser = UserRow & { sessionId: string }

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
    tokenVerified: (request: FastifyRequest) => Promise<void>
    signAccessToken: (user: { id: string, role: Role }, sessionId: string) => string
    setAuthCookies: (reply: FastifyReply, tokens: { accessToken: string, refreshToken?: string }) => void
    clearAuthCookies: (reply: FastifyReply) => void
    /**
     * The refresh cookie's value; undefined when absent or empty. Throws 401 REFRESH_INVALID when the
     * request carries it more than once (a sibling subdomain can plant a second one).
     */
    readRefreshToken: (request: FastifyRequest) => string | undefined
    /**
     * After a successful sign-in in a browser (password, passkey, identity provider): marks this
     * browser as one that signed in as `userId`, so that user's per-account limit does not stop it.
     */
    setDeviceCookie: (request: FastifyRequest, reply: FastifyReply, userId: string) => void
    /** The session id in a valid access cookie (never a Bearer header), for a sign-in that replaces it. */
    readAccessCookieSession: (request: FastifyRequest) => string | undefined
    /** The browser's valid device cookie, if it has one (and only one). */
    readDeviceCookie: (request: FastifyRequest) => DeviceCookie | undefined
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

export interface DeviceCookie { readonly userId: string, readonly deviceId: string }

// One year: long enough that a returning user's browser is still known after a holiday.
const DEVICE_COOKIE_MAX_AGE = 365 * 24 * 60 * 60

/** The device cookies' signing key, derived from a JWT key so that no second secret has to be kept. */
const deviceKey = (jwtSecret: string) => createHmac('sha256', jwtSecret).update('cookie-auth-api device cookie').digest('base64url')

/**
 * How many times a cookie name appears in the request's Cookie header. The parser keeps the first
 * of duplicates, and a sibling subdomain (or a man in the middle on plain HTTP) can plant a cookie
 * of the same name ahead of ours: whoever sends two gets neither.
 */
export function cookieCount (request: FastifyRequest, name: string): number {
  const header = request.headers.cookie
  if (header === undefined) return 0
  let count = 0
  for (const pair of header.split(';')) {
    const equals = pair.indexOf('=')
    if ((equals === -1 ? pair : pair.slice(0, equals)).trim() === name) count += 1
  }
  return count
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * `true`: a user whose role must have a second factor and has none may still reach this route
     * (API.md, "Managing second factors"): who they are, the enrolment routes, and the way out.
     * A flag on the route, so that a new route is closed to them unless it says otherwise.
     */
    duringEnrolment?: boolean
  }
}

/** For a route plugin whose every route is part of enrolment (second factors, passkeys). */
export function openEveryRouteDuringEnrolment (app: FastifyInstance): void {
  app.addHook('onRoute', (route) => { route.config = { ...route.config, duringEnrolment: true } })
}

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
    if (cookieCount(request, config.accessCookieName) > 1) throw new TokenInvalid()
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
      !isUuid(claims.sub) || !isUuid(claims.sid)) {
      throw new TokenInvalid()
    }
    return claims
  }

  const activeSessionUser = prepareActiveSessionUser(app.db)

  app.decorateRequest('caller', null as unknown as Caller)
  app.decorate('tokenVerified', async function tokenVerified (request: FastifyRequest) {
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
      await request.audit(app.db, 'access_denied', {
        detail: { method: request.method, route: request.routeOptions.url ?? request.url, role: user.role },
      })
      throw new ForbiddenRole()
    }
  })

  const requiredRoles = new Set(config.mfaRequiredRoles)
  app.decorate('assertSecondFactorPolicy', (request: FastifyRequest, user: { role: Role, mfa: boolean }) => {
    if (!requiredRoles.has(user.role) || user.mfa) return
    if (request.routeOptions.config.duringEnrolment === true) return
    throw new MfaEnrolmentRequired()
  })

  app.decorate('secretBox', createSecretBox(config.encryptionKey, config.encryptionPreviousKeys))

  app.decorate('signAccessToken', (user: { id: string, role: Role }, sessionId: string) =>
    app.jwt.sign({ sub: user.id, sid: sessionId, role: user.role, typ: 'access', jti: randomUUID() }))

  // SameSite=None (the default) so a frontend on another site gets the cookies on credentialed
  // fetches; it needs Secure, and Chromium sends such a cookie cross-site only when Partitioned (see
  // README). Without Secure (plain-HTTP development) browsers refuse None, so Lax is the default; a
  // one-site deployment (Nginx serving frontend and API) may choose Lax or Strict (COOKIE_SAMESITE).
  const baseCookie: CookieSerializeOptions = {
    httpOnly: true,
    secure: config.cookieSecure,
    sameSite: config.cookieSameSite,
    ...(config.cookiePartitioned ? { partitioned: true } : {}),
  }
  const accessCookie: CookieSerializeOptions = { ...baseCookie, path: '/', maxAge: config.accessTokenTtl }
  // The refresh token travels only to /api/auth, never with ordinary API calls.
  const refreshCookie: CookieSerializeOptions = { ...baseCookie, path: '/api/auth', maxAge: config.refreshTokenTtl }

  app.decorate('setAuthCookies', (reply: FastifyReply, tokens: { accessToken: string, refreshToken?: string }) => {
    reply.setCookie(config.accessCookieName, tokens.accessToken, accessCookie)
    if (tokens.refreshToken !== undefined) reply.setCookie(config.refreshCookieName, tokens.refreshToken, refreshCookie)
  })

  app.decorate('readAccessCookieSession', (request: FastifyRequest) => {
    if (cookieCount(request, config.accessCookieName) !== 1) return undefined
    const token = request.cookies[config.accessCookieName]
    if (token === undefined || token === '') return undefined
    try {
      const claims = verifyToken(token)
      return claims.typ === 'access' && isUuid(claims.sid) ? claims.sid : undefined
    } catch {
      return undefined
    }
  })

  app.decorate('readRefreshToken', (request: FastifyRequest) => {
    if (cookieCount(request, config.refreshCookieName) > 1) throw new RefreshInvalid()
    const presented = request.cookies[config.refreshCookieName]
    return presented === undefined || presented === '' ? undefined : presented
  })

  // Device cookies (OWASP): HMAC-signed `<userId>.<deviceId>`, so one cannot be forged for an account.
  // Signed with the current key, accepted under a previous one (JWT_PREVIOUS_SECRETS) too.
  const deviceSigner = new Signer([config.jwtSecret, ...config.jwtPreviousSecrets].map(deviceKey))
  const deviceCookie: CookieSerializeOptions = { ...baseCookie, path: '/api/auth', maxAge: DEVICE_COOKIE_MAX_AGE }

  function readDeviceCookie (request: FastifyRequest): DeviceCookie | undefined {
    if (cookieCount(request, config.deviceCookieName) !== 1) return undefined
    const raw = request.cookies[config.deviceCookieName]
    if (raw === undefined || raw === '') return undefined
    const unsigned = deviceSigner.unsign(raw)
    if (!unsigned.valid || unsigned.value === null) return undefined
    const [userId = '', deviceId = ''] = unsigned.value.split('.')
    if (!isUuid(userId) || !/^[\w-]{16,64}$/.test(deviceId)) return undefined
    return { userId, deviceId }
  }
  app.decorate('readDeviceCookie', readDeviceCookie)

  app.decorate('setDeviceCookie', (request: FastifyRequest, reply: FastifyReply, userId: string) => {
    const known = readDeviceCookie(request)
    // The same browser keeps its id (and its own failure count); another user's gets a new one.
    const deviceId = known !== undefined && known.userId === userId ? known.deviceId : randomBytes(16).toString('base64url')
    reply.setCookie(config.deviceCookieName, deviceSigner.sign(`${userId}.${deviceId}`), deviceCookie)
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
}, { name: 'auth', dependencies: ['config', 'db', 'audit'] })
