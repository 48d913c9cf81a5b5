import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { recordAuditEvent } from '../src/db/queries/audit.js'
import { listActiveSessions, revokeAllSessions, revokeSession, rotateRefreshToken } from '../src/db/queries/sessions.js'
import { createUser, findUserWithHashById, findUserWithHashByName, setPasswordHash, type UserRow } from '../src/db/queries/users.js'
import {
  BadCredentials, CommonPassword, RefreshInvalid, RefreshReused, SamePassword, SessionNotFound, WrongPassword,
} from '../src/errors.js'
import { hashPassword, isCommonPassword, PASSWORD_MAX_LENGTH, spendDecoyVerification, verifyPassword } from '../src/passwords.js'
import { BearerAnswer, Credentials, DateTime, IdParams, MfaChallengeSchema, NoContent, Password, signedIn, UserEnvelope } from '../src/schemas.js'
import { SIGN_IN_METHODS } from '../src/db/schema.js'
import { afterPassword } from '../src/sign-in.js'

const Session = Type.Object({
  id: Type.String({ format: 'uuid' }),
  createdAt: DateTime,
  lastUsedAt: DateTime,
  userAgent: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  current: Type.Boolean(),
  method: Type.Union(SIGN_IN_METHODS.map((method) => Type.Literal(method)), { description: 'how the session was established' }),
})

function publicFields ({ id, username, role, createdAt, mfa, totpOn }: UserRow & { totpOn: boolean }): UserRow & { totpOn: boolean } {
  return { id, username, role, createdAt, mfa, totpOn }
}

const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app

  /**
   * The password check shared by /login and /token. An unknown name still costs one argon2
   * verification, so the two failures look the same and take the same time.
   */
  async function checkCredentials (request: FastifyRequest, username: string, password: string): Promise<UserRow & { totpOn: boolean }> {
    const user = await findUserWithHashByName(app.db, username)
    const isValid = user === undefined
      ? (await spendDecoyVerification(password), false)
      : await verifyPassword(user.passwordHash, password)
    if (!isValid) {
      await recordAuditEvent(app.db, request.log, {
        type: 'login_failed', userId: user?.id ?? null, ip: request.ip, detail: { username },
      })
      throw new BadCredentials()
    }
    return publicFields(user!)
  }

  app.post('/register', {
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['auth'],
      summary: 'Create an account (role user)',
      body: Credentials,
      response: { 201: UserEnvelope },
    },
  }, async (request, reply) => {
    const { username, password } = request.body
    if (isCommonPassword(password)) throw new CommonPassword()
    const passwordHash = await hashPassword(password)
    const user = await app.db.transaction(async (tx) => {
      const created = await createUser(tx, { username, passwordHash })
      await recordAuditEvent(tx, request.log, { type: 'register', userId: created.id, actorId: created.id, ip: request.ip })
      return created
    })
    return reply.code(201).send({ user })
  })

  app.post('/login', {
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['auth'],
      summary: 'Sign in: sets the access and refresh cookies, or starts a two-step sign-in',
      description: 'For a user with TOTP on, the answer is `{mfaRequired: true, methods}` with the pending-sign-in cookie; finish with POST /api/auth/mfa/verify.',
      body: Credentials,
      response: { 200: Type.Union([UserEnvelope, MfaChallengeSchema]) },
    },
  }, async (request, reply) => {
    const user = await checkCredentials(request, request.body.username, request.body.password)
    return afterPassword(app, request, reply, user, 'browser')
  })

  app.post('/token', {
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['auth'],
      summary: 'Sign in for non-browser clients: a Bearer token, no cookie',
      body: Credentials,
      description: 'For a user with TOTP on, the answer is `{mfaRequired: true, mfa_token, methods}`; finish with POST /api/auth/mfa/verify.',
      response: {
        200: Type.Union([BearerAnswer, Type.Object({ ...MfaChallengeSchema.properties, mfa_token: Type.String() })]),
      },
    },
  }, async (request, reply) => {
    const user = await checkCredentials(request, request.body.username, request.body.password)
    return afterPassword(app, request, reply, user, 'bearer')
  })

  app.post('/refresh', {
    schema: {
      tags: ['auth'],
      summary: 'Rotate the refresh cookie and issue a new access cookie',
      response: { 200: UserEnvelope },
    },
  }, async (request, reply) => {
    const presented = request.cookies[config.refreshCookieName]
    if (presented === undefined || presented === '') throw new RefreshInvalid()
    const outcome = await rotateRefreshToken(app.db, presented, config)
    switch (outcome.kind) {
      case 'invalid':
        // Never clears cookies: a 401 from a lost race must not sign out a tab that holds newer ones.
        throw new RefreshInvalid()
      case 'reused':
        await recordAuditEvent(app.db, request.log, {
          type: 'refresh_reused', userId: outcome.userId, ip: request.ip, detail: { sessionId: outcome.sessionId },
        })
        app.clearAuthCookies(reply)
        throw new RefreshReused()
      case 'grace':
        // The browser already holds the newest refresh token: send only a new access cookie.
        app.setAuthCookies(reply, { accessToken: app.signAccessToken(outcome.user, outcome.sessionId) })
        return { user: outcome.user }
      case 'rotated':
        app.setAuthCookies(reply, {
          accessToken: app.signAccessToken(outcome.user, outcome.sessionId),
          refreshToken: outcome.refreshToken,
        })
        return { user: outcome.user }
    }
  })

  app.post('/logout', {
    preHandler: app.tokenRequired(),
    schema: { tags: ['auth'], summary: 'Sign out: this session is revoked', security: signedIn, response: { 204: NoContent } },
  }, async (request, reply) => {
    const { id, sessionId } = request.user
    await app.db.transaction(async (tx) => {
      await revokeSession(tx, id, sessionId)
      await recordAuditEvent(tx, request.log, { type: 'logout', userId: id, actorId: id, ip: request.ip, detail: { sessionId } })
    })
    app.clearAuthCookies(reply)
    return reply.code(204).send(null)
  })

  app.post('/logout-all', {
    preHandler: app.tokenRequired(),
    schema: { tags: ['auth'], summary: 'Sign out everywhere', security: signedIn, response: { 204: NoContent } },
  }, async (request, reply) => {
    const { id } = request.user
    await app.db.transaction(async (tx) => {
      const revoked = await revokeAllSessions(tx, id)
      await recordAuditEvent(tx, request.log, { type: 'logout_all', userId: id, actorId: id, ip: request.ip, detail: { revoked } })
    })
    app.clearAuthCookies(reply)
    return reply.code(204).send(null)
  })

  app.get('/sessions', {
    preHandler: app.tokenRequired(),
    schema: {
      tags: ['auth'],
      summary: "The caller's active sessions",
      security: signedIn,
      response: { 200: Type.Object({ items: Type.Array(Session) }) },
    },
  }, async (request) => {
    const sessions = await listActiveSessions(app.db, request.user.id)
    return { items: sessions.map((session) => ({ ...session, current: session.id === request.user.sessionId })) }
  })

  app.delete('/sessions/:id', {
    preHandler: app.tokenRequired(),
    schema: {
      tags: ['auth'],
      summary: 'Revoke one of the caller\'s sessions',
      security: signedIn,
      params: IdParams,
      response: { 204: NoContent },
    },
  }, async (request, reply) => {
    const { id: userId, sessionId: currentSessionId } = request.user
    const sessionId = request.params.id
    await app.db.transaction(async (tx) => {
      if (!await revokeSession(tx, userId, sessionId)) throw new SessionNotFound()
      await recordAuditEvent(tx, request.log, { type: 'session_revoked', userId, actorId: userId, ip: request.ip, detail: { sessionId } })
    })
    if (sessionId === currentSessionId) app.clearAuthCookies(reply)
    return reply.code(204).send(null)
  })

  app.get('/me', {
    preHandler: app.tokenRequired(),
    schema: { tags: ['auth'], summary: 'The signed-in user', security: signedIn, response: { 200: UserEnvelope } },
  }, async (request) => {
    return { user: request.user }
  })

  app.post('/password', {
    preHandler: app.tokenRequired(),
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['auth'],
      summary: 'Change the password; every other session is revoked',
      security: signedIn,
      body: Type.Object({
        // Any length the user may once have chosen: only the new password meets today's rules.
        currentPassword: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }),
        newPassword: Password,
      }, { additionalProperties: false }),
      response: { 204: NoContent },
    },
  }, async (request, reply) => {
    const { currentPassword, newPassword } = request.body
    const { id, sessionId } = request.user
    const user = await findUserWithHashById(app.db, id)
    if (!user || !await verifyPassword(user.passwordHash, currentPassword)) throw new WrongPassword()
    if (isCommonPassword(newPassword)) throw new CommonPassword()
    if (newPassword === currentPassword) throw new SamePassword()
    const passwordHash = await hashPassword(newPassword)
    await app.db.transaction(async (tx) => {
      await setPasswordHash(tx, id, passwordHash)
      const revoked = await revokeAllSessions(tx, id, sessionId)
      await recordAuditEvent(tx, request.log, { type: 'password_changed', userId: id, actorId: id, ip: request.ip, detail: { revokedSessions: revoked } })
    })
    return reply.code(204).send(null)
  })
}

export default authRoutes
