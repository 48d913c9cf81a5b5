import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { accountKeyOfUser } from '../plugins/account-limit.js'
import { openEveryRouteDuringEnrolment } from '../plugins/auth.js'
import {
  countRecoveryCodesLeft, disableTotp, enableTotp, findTotp, replaceRecoveryCodes, startTotpEnrolment,
} from '../src/db/queries/mfa.js'
import { countPasskeys } from '../src/db/queries/passkeys.js'
import { consumeSecret, findLiveSecret, recordFailedAttempt } from '../src/db/queries/one-time-secrets.js'
import { findUserById, findUserWithHashById } from '../src/db/queries/users.js'
import {
  MfaInvalid, MfaPendingInvalid, NothingToConfirm, TotpAlreadyOn, TotpNotOn, WrongPassword,
} from '../src/errors.js'
import { PASSWORD_MAX_LENGTH, verifyPassword } from '../src/passwords.js'
import { BearerAnswer, NoContent, settingCookies, SIGNED_IN_COOKIES, signedIn, UserEnvelope } from '../src/schemas.js'
import {
  hashRecoveryCode, newRecoveryCodes, newTotpSecret, otpauthUrl, TOTP_CODE_PATTERN, verifyTotpCode, verifyTotpOrRecoveryCode,
  type SecondFactorUsed,
} from '../src/second-factor.js'
import { auditAndNotify } from '../src/mail/notify.js'
import { MFA_PENDING_MAX_ATTEMPTS, startSession, type SignInClient } from '../src/sign-in.js'

const TotpCode = Type.String({ pattern: TOTP_CODE_PATTERN, description: '6 digits from the authenticator app' })
// Dashes and spaces allowed: people paste them as shown.
const RecoveryCode = Type.String({ minLength: 8, maxLength: 64, pattern: '^[A-Za-z0-9 -]+$', description: 'one of the recovery codes' })
const CurrentPassword = Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH })
const TotpOrRecoveryCode = Type.Union([TotpCode, RecoveryCode], { description: 'a TOTP code or a recovery code' })
const RecoveryCodes = Type.Object({ recoveryCodes: Type.Array(Type.String(), { minItems: 10, maxItems: 10, description: 'shown once: store them now' }) })
const MfaToken = Type.String({ minLength: 1, maxLength: 200, description: '`mfa_token` from POST /api/auth/token (Bearer clients)' })

/**
 * Second factors: enrolment and management for a signed-in user, and the second step of a
 * sign-in. Every wrong code counts against the account (shared across instances) and is audited.
 */
const mfaRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app
  // A user who must have a second factor can reach every route here: they are how one gets it.
  openEveryRouteDuringEnrolment(app)

  // The per-account limit on wrong codes. Kept to these two call sites so the shared per-account
  // limiter (app.accountLimit) can replace them in one place.
  // Wrong codes count with the account's other failures (plugins/account-limit.ts), shared across
  // instances through Redis; a browser holding this user's device cookie counts on its own.
  async function assertCodeAttemptsAllowed (request: FastifyRequest, userId: string, reply: FastifyReply) {
    await app.accountLimit.assertNotLimited(request, reply, accountKeyOfUser(userId))
  }
  async function rejectWrongCode (request: FastifyRequest, userId: string, stage: string): Promise<never> {
    await app.accountLimit.recordFailure(request, accountKeyOfUser(userId))
    await request.audit(app.db, 'mfa_failed', { userId, actorId: userId, detail: { stage } })
    throw new MfaInvalid()
  }

  async function recordRecoveryCodeUse (request: FastifyRequest, userId: string) {
    const left = await countRecoveryCodesLeft(app.db, userId)
    await app.db.transaction(async (tx) => {
      await auditAndNotify(tx, request, userId, 'recovery_code_used', { left })
    })
  }

  /** The current password, then a TOTP or recovery code: what turning TOTP off or new codes need. */
  async function checkPasswordAndCode (request: FastifyRequest, reply: FastifyReply, password: string, code: string, stage: string): Promise<SecondFactorUsed> {
    const userId = request.user.id
    await assertCodeAttemptsAllowed(request, userId, reply)
    const user = await findUserWithHashById(app.db, userId)
    if (!user || !await verifyPassword(user.passwordHash, password)) throw new WrongPassword()
    const totp = await findTotp(app.db, userId)
    if (totp === undefined || !totp.enabled) throw new TotpNotOn()
    const used = await verifyTotpOrRecoveryCode(app.db, app.secretBox, userId, code)
    if (used === undefined) return rejectWrongCode(request, userId, stage)
    if (used === 'recovery_code') await recordRecoveryCodeUse(request, userId)
    return used
  }

  app.get('/mfa', {
    preHandler: app.tokenRequired(),
    schema: {
      tags: ['mfa'],
      summary: 'Second factors set up for the caller',
      security: signedIn,
      response: {
        200: Type.Object({
          totp: Type.Boolean(),
          passkeys: Type.Integer({ minimum: 0 }),
          recoveryCodesLeft: Type.Integer({ minimum: 0 }),
          required: Type.Boolean({ description: 'MFA_REQUIRED_ROLES names the caller\'s role' }),
        }),
      },
    },
  }, async (request) => {
    const { id, role } = request.user
    const totp = await findTotp(app.db, id)
    return {
      totp: totp?.enabled ?? false,
      passkeys: await countPasskeys(app.db, id),
      recoveryCodesLeft: totp?.enabled === true ? await countRecoveryCodesLeft(app.db, id) : 0,
      required: config.mfaRequiredRoles.includes(role),
    }
  })

  app.post('/mfa/totp', {
    preHandler: app.tokenRequired(),
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['mfa'],
      summary: 'Start TOTP enrolment: a new secret, active once confirmed with a code',
      security: signedIn,
      body: Type.Object({ currentPassword: CurrentPassword }, { additionalProperties: false }),
      response: { 201: Type.Object({ secret: Type.String({ description: 'base32' }), otpauthUrl: Type.String() }) },
    },
  }, async (request, reply) => {
    const { id, username } = request.user
    const user = await findUserWithHashById(app.db, id)
    if (!user || !await verifyPassword(user.passwordHash, request.body.currentPassword)) throw new WrongPassword()
    const secret = newTotpSecret()
    if (!await startTotpEnrolment(app.db, id, app.secretBox.seal(secret, id))) throw new TotpAlreadyOn()
    return reply.code(201).send({ secret, otpauthUrl: otpauthUrl(username, secret) })
  })

  app.post('/mfa/totp/confirm', {
    preHandler: app.tokenRequired(),
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['mfa'],
      summary: 'Confirm TOTP enrolment with a code: TOTP on, 10 recovery codes (shown once)',
      security: signedIn,
      body: Type.Object({ code: TotpCode }, { additionalProperties: false }),
      response: { 200: RecoveryCodes },
    },
  }, async (request, reply) => {
    const { id } = request.user
    await assertCodeAttemptsAllowed(request, id, reply)
    const totp = await findTotp(app.db, id)
    if (totp === undefined || totp.enabled) throw new NothingToConfirm()
    if (!await verifyTotpCode(app.db, app.secretBox, id, totp.sealedSecret, request.body.code, false)) {
      return rejectWrongCode(request, id, 'confirm')
    }
    const recoveryCodes = newRecoveryCodes()
    await app.db.transaction(async (tx) => {
      if (!await enableTotp(tx, id)) throw new NothingToConfirm()
      await replaceRecoveryCodes(tx, id, recoveryCodes.map(hashRecoveryCode))
      await auditAndNotify(tx, request, id, 'mfa_enabled', { method: 'totp' })
    })
    return { recoveryCodes }
  })

  app.post('/mfa/totp/disable', {
    preHandler: app.tokenRequired(),
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['mfa'],
      summary: 'Turn TOTP off (the current password and a TOTP or recovery code)',
      security: signedIn,
      body: Type.Object({ currentPassword: CurrentPassword, code: TotpOrRecoveryCode }, { additionalProperties: false }),
      response: { 204: NoContent },
    },
  }, async (request, reply) => {
    const { id } = request.user
    const used = await checkPasswordAndCode(request, reply, request.body.currentPassword, request.body.code, 'disable')
    await app.db.transaction(async (tx) => {
      await disableTotp(tx, id)
      await auditAndNotify(tx, request, id, 'mfa_disabled', { method: 'totp', with: used })
    })
    return reply.code(204).send(null)
  })

  app.post('/mfa/recovery-codes', {
    preHandler: app.tokenRequired(),
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['mfa'],
      summary: 'New recovery codes (the old ones stop working)',
      security: signedIn,
      body: Type.Object({ currentPassword: CurrentPassword, code: TotpOrRecoveryCode }, { additionalProperties: false }),
      response: { 200: RecoveryCodes },
    },
  }, async (request, reply) => {
    const { id } = request.user
    await checkPasswordAndCode(request, reply, request.body.currentPassword, request.body.code, 'regenerate')
    const recoveryCodes = newRecoveryCodes()
    await app.db.transaction(async (tx) => {
      await replaceRecoveryCodes(tx, id, recoveryCodes.map(hashRecoveryCode))
      await auditAndNotify(tx, request, id, 'recovery_codes_regenerated')
    })
    return { recoveryCodes }
  })

  app.post('/mfa/verify', {
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['mfa'],
      summary: 'Second step of a sign-in: a TOTP code or a recovery code',
      description: 'With the pending-sign-in cookie from /login (answers like /login) or `mfa_token` from /token (answers like /token).',
      body: Type.Union([
        Type.Object({ code: TotpCode, mfa_token: Type.Optional(MfaToken) }, { additionalProperties: false }),
        Type.Object({ recoveryCode: RecoveryCode, mfa_token: Type.Optional(MfaToken) }, { additionalProperties: false }),
      ]),
      response: {
        200: settingCookies(Type.Union([UserEnvelope, BearerAnswer]),
          `With the pending-sign-in cookie: sets ${SIGNED_IN_COOKIES}, and clears the pending cookie. With \`mfa_token\`: no cookie, the tokens are in the body`),
      },
    },
  }, async (request, reply) => {
    const body = request.body
    const presented: { value: string | undefined, client: SignInClient } = body.mfa_token !== undefined
      ? { value: body.mfa_token, client: 'bearer' }
      : { value: request.cookies[config.mfaPendingCookieName], client: 'browser' }
    const pendingInvalid = () => {
      if (presented.client === 'browser') app.clearMfaPendingCookie(reply)
      return new MfaPendingInvalid()
    }
    const value = presented.value
    if (value === undefined || value === '') throw pendingInvalid()
    const pending = await findLiveSecret(app.db, 'mfa_pending', value)
    // A cookie's pending sign-in ends in cookies, a token's in a token: never one for the other.
    if (pending === undefined || pending.userId === null || pending.data.client !== presented.client) throw pendingInvalid()
    const userId = pending.userId

    await assertCodeAttemptsAllowed(request, userId, reply)
    const used = await verifyTotpOrRecoveryCode(app.db, app.secretBox, userId, 'code' in body ? body.code : body.recoveryCode)
    app.metrics.secondFactorChecks.inc({ method: 'code' in body ? 'totp' : 'recovery_code', outcome: used === undefined ? 'failure' : 'success' })
    if (used === undefined) {
      // The fifth wrong code uses the pending sign-in up: the next attempt must start over.
      await recordFailedAttempt(app.db, 'mfa_pending', value, MFA_PENDING_MAX_ATTEMPTS)
      return rejectWrongCode(request, userId, 'sign-in')
    }
    // Single use: of two right codes sent at once for one pending sign-in, one session starts.
    if (await consumeSecret(app.db, 'mfa_pending', value) === undefined) throw pendingInvalid()
    if (presented.client === 'browser') app.clearMfaPendingCookie(reply)
    if (used === 'recovery_code') await recordRecoveryCodeUse(request, userId)
    const user = await findUserById(app.db, userId)
    if (!user) throw pendingInvalid()
    return startSession(app, request, reply, user, presented.client, used === 'totp' ? 'password+totp' : 'recovery_code')
  })
}

export default mfaRoutes
