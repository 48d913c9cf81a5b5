import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { accountKeyOfName, accountKeyOfUser } from '../plugins/account-limit.js'
import { listActiveSessions, revokeAllSessions, revokeSession, rotateRefreshToken } from '../src/db/queries/sessions.js'
import { createUser, findUserWithHashById, findUserWithHashByName, setPasswordHash, type UserRow } from '../src/db/queries/users.js'
import {
  BadCredentials, CommonPassword, EmailDisabled, RefreshInvalid, RefreshReused, SamePassword, SessionNotFound, WrongPassword,
} from '../src/errors.js'
import { hashPassword, isCommonPassword, PASSWORD_MAX_LENGTH, spendDecoyVerification, verifyPassword } from '../src/passwords.js'
import { BearerAnswer, Credentials, DateTime, Registration, failures, IdParams, MfaChallengeSchema, NoContent, Password, refreshCookie, settingCookies, SIGNED_IN_COOKIES, signedIn, UserEnvelope } from '../src/schemas.js'
import { SIGN_IN_METHODS } from '../src/db/schema.js'
import { afterPassword } from '../src/sign-in.js'
import { auditAndNotify } from '../src/mail/notify.js'
import { requestEmailVerification } from './email.js'

const Session = Type.Object({
  id: Type.String({ format: 'uuid' }),
  createdAt: DateTime,
  lastUsedAt: DateTime,
  userAgent: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  current: Type.Boolean(),
  method: Type.Union(SIGN_IN_METHODS.map((method) => Type.Literal(method)), { description: 'how the session was established' }),
})

function publicFields ({ id, username, role, createdAt, mfa, email, emailVerified, totpOn }: UserRow & { totpOn: boolean }): UserRow & { totpOn: boolean } {
  return { id, username, role, createdAt, mfa, email, emailVerified, totpOn }
}

const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app

  /**
   * The password check shared by /login and /token. An unknown name still costs one argon2
   * verification, so the two failures look the same and take the same time.
   */
  async function checkCredentials (request: FastifyRequest, reply: FastifyReply, username: string, password: string): Promise<UserRow & { totpOn: boolean }> {
    const user = await findUserWithHashByName(app.db, username)
    // Checked before the password: while limited, the right one gets the same 429 as a wrong one.
    const account = user === undefined ? accountKeyOfName(username) : accountKeyOfUser(user.id)
    await app.accountLimit.assertNotLimited(request, reply, account)
    const isValid = user === undefined
      ? (await spendDecoyVerification(password), false)
      : await verifyPassword(user.passwordHash, password)
    if (!isValid) {
      await app.accountLimit.recordFailure(request, account)
      await request.audit(app.db, 'login_failed', {
        userId: user?.id ?? null, detail: { username }
      })
      app.metrics.signIns.inc({ method: 'password', outcome: 'failure' })
      throw new BadCredentials()
    }
    return publicFields(user!)
  }

  app.post('/register', {
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['auth'],
      summary: 'Create an account (role user)',
      description: 'With `email`, a verification link goes to that address (the account has no address until it is used).',
      body: Registration,
      response: {
        201: UserEnvelope,
        ...failures({
          400: '`FST_ERR_VALIDATION` (username 3–32 of A–Z a–z 0–9 _ . -, password 8–256 characters, no other field) or `PASSWORD_TOO_COMMON`',
          409: '`USERNAME_TAKEN`: the name is taken, whatever its case',
        }),
      },
    },
  }, async (request, reply) => {
    const { username, password, email } = request.body
    if (email !== undefined && !config.mailEnabled) throw new EmailDisabled()
    if (isCommonPassword(password)) throw new CommonPassword()
    const passwordHash = await hashPassword(password)
    const user = await app.db.transaction(async (tx) => {
      const created = await createUser(tx, { username, passwordHash })
      await request.audit(tx, 'register', { userId: created.id, actorId: created.id })
      if (email !== undefined) await requestEmailVerification(tx, app, request, created, email)
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
      response: {
        200: settingCookies(Type.Union([UserEnvelope, MfaChallengeSchema]), `Sets ${SIGNED_IN_COOKIES}, or (second factor owed) the pending sign-in cookie \`__Secure-mfa_pending\``),
        ...failures({ 401: '`BAD_CREDENTIALS`: the same answer for an unknown user and a wrong password' }),
      },
    },
  }, async (request, reply) => {
    const user = await checkCredentials(request, reply, request.body.username, request.body.password)
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
        200: Type.Union([BearerAnswer, Type.Object({ ...MfaChallengeSchema.properties, mfa_token: Type.Optional(Type.String({ description: 'absent when the only method is `passkey`, which a Bearer client cannot use' })) })]),
        ...failures({ 401: '`BAD_CREDENTIALS`: the same answer for an unknown user and a wrong password' }),
      },
    },
  }, async (request, reply) => {
    const user = await checkCredentials(request, reply, request.body.username, request.body.password)
    return afterPassword(app, request, reply, user, 'bearer')
  })

  app.post('/refresh', {
    config: { duringEnrolment: true },
    schema: {
      tags: ['auth'],
      summary: 'Rotate the refresh cookie and issue a new access cookie',
      security: refreshCookie,
      response: {
        200: settingCookies(UserEnvelope, `Rotates ${SIGNED_IN_COOKIES} (within the reuse grace: a new access cookie only)`),
        ...failures({
          401: '`REFRESH_INVALID` (missing, unknown or expired refresh cookie, or the session is over SESSION_MAX_AGE) or `REFRESH_REUSED` (an already rotated token: the session is revoked)',
        }),
      },
    },
  }, async (request, reply) => {
    const presented = app.readRefreshToken(request)
    if (presented === undefined) {
      app.metrics.refreshes.inc({ outcome: 'invalid' })
      throw new RefreshInvalid()
    }
    const outcome = await rotateRefreshToken(app.db, presented, config)
    app.metrics.refreshes.inc({ outcome: outcome.kind })
    switch (outcome.kind) {
      case 'invalid':
        // Never clears cookies: a 401 from a lost race must not sign out a tab that holds newer ones.
        throw new RefreshInvalid()
      case 'reused':
        await request.audit(app.db, 'refresh_reused', {
          userId: outcome.userId, detail: { sessionId: outcome.sessionId }
        })
        app.clearAuthCookies(reply)
        throw new RefreshReused()
      case 'grace':
        // An audit row all the same: a theft inside the window must leave a trace.
        await request.audit(app.db, 'refresh_grace', {
          userId: outcome.user.id, detail: { sessionId: outcome.sessionId }
        })
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
    config: { duringEnrolment: true },
    preHandler: app.tokenRequired(),
    schema: {
      tags: ['auth'],
      summary: 'Sign out: this session is revoked',
      security: signedIn,
      response: { 204: settingCookies(NoContent, `Clears ${SIGNED_IN_COOKIES}`) },
    },
  }, async (request, reply) => {
    const { id, sessionId } = request.user
    await app.db.transaction(async (tx) => {
      await revokeSession(tx, id, sessionId)
      await request.audit(tx, 'logout', { userId: id, actorId: id, detail: { sessionId } })
    })
    app.clearAuthCookies(reply)
    return reply.code(204).send(null)
  })

  app.post('/logout-all', {
    preHandler: app.tokenRequired(),
    schema: {
      tags: ['auth'],
      summary: 'Sign out everywhere',
      security: signedIn,
      response: { 204: settingCookies(NoContent, `Clears ${SIGNED_IN_COOKIES}`) },
    },
  }, async (request, reply) => {
    const { id } = request.user
    await app.db.transaction(async (tx) => {
      const revoked = await revokeAllSessions(tx, id)
      await request.audit(tx, 'logout_all', { userId: id, actorId: id, detail: { revoked } })
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
      response: {
        204: settingCookies(NoContent, `Clears ${SIGNED_IN_COOKIES} when the session revoked is this one`),
        ...failures({ 404: '`SESSION_NOT_FOUND`: no active session of yours has this id' }),
      },
    },
  }, async (request, reply) => {
    const { id: userId, sessionId: currentSessionId } = request.user
    const sessionId = request.params.id
    await app.db.transaction(async (tx) => {
      if (!await revokeSession(tx, userId, sessionId)) throw new SessionNotFound()
      await request.audit(tx, 'session_revoked', { userId, actorId: userId, detail: { sessionId } })
    })
    if (sessionId === currentSessionId) app.clearAuthCookies(reply)
    return reply.code(204).send(null)
  })

  app.get('/me', {
    config: { duringEnrolment: true },
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
      response: {
        204: NoContent,
        ...failures({
          400: '`FST_ERR_VALIDATION`, `PASSWORD_TOO_COMMON` or `PASSWORD_UNCHANGED`',
          401: '`BAD_CREDENTIALS` (the current password is wrong), or the session ones: `TOKEN_MISSING`, `TOKEN_INVALID`, `TOKEN_EXPIRED`, `SESSION_REVOKED`',
        }),
      },
    },
  }, async (request, reply) => {
    const { currentPassword, newPassword } = request.body
    const { id, sessionId } = request.user
    // A stolen session must not be a way to guess the password: limited per account like sign-in.
    const account = accountKeyOfUser(id)
    await app.accountLimit.assertNotLimited(request, reply, account)
    const user = await findUserWithHashById(app.db, id)
    if (!user || !await verifyPassword(user.passwordHash, currentPassword)) {
      await app.accountLimit.recordFailure(request, account)
      await request.audit(app.db, 'password_change_failed', { userId: id, actorId: id, detail: { sessionId } })
      throw new WrongPassword()
    }
    if (isCommonPassword(newPassword)) throw new CommonPassword()
    if (newPassword === currentPassword) throw new SamePassword()
    const passwordHash = await hashPassword(newPassword)
    await app.db.transaction(async (tx) => {
      await setPasswordHash(tx, id, passwordHash)
      const revoked = await revokeAllSessions(tx, id, sessionId)
      await auditAndNotify(tx, request, id, 'password_changed', { revokedSessions: revoked })
    })
    return reply.code(204).send(null)
  })
}

export default authRoutes
