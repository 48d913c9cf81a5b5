import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { accountKeyOfUser } from '../plugins/account-limit.js'
import type { Db } from '../src/db/client.js'
import { findEmailOf, findUserByVerifiedEmail, lockUser, setVerifiedEmail } from '../src/db/queries/email.js'
import { findTotp } from '../src/db/queries/mfa.js'
import { consumeSecret, findLiveSecret, issueSecret, recordFailedAttempt, voidSecrets } from '../src/db/queries/one-time-secrets.js'
import { revokeAllSessions } from '../src/db/queries/sessions.js'
import { findUserWithHashById, setPasswordHash } from '../src/db/queries/users.js'
import { CommonPassword, EmailTokenInvalid, MfaInvalid, RateLimited, ResetTokenInvalid, WrongPassword } from '../src/errors.js'
import { auditAndNotify, mailContext, queueMail, queueNotification } from '../src/mail/notify.js'
import { linkMail, notificationMail } from '../src/mail/templates.js'
import { hashPassword, isCommonPassword, PASSWORD_MAX_LENGTH, verifyPassword } from '../src/passwords.js'
import { EmailAddress, failures, NoContent, Password, signedIn, UserEnvelope } from '../src/schemas.js'
import { secondFactorKindOf, verifyTotpOrRecoveryCode } from '../src/second-factor.js'

// API.md: a verification link lives 24 hours, a reset link 30 minutes.
export const VERIFICATION_TTL_SECONDS = 24 * 60 * 60
export const RESET_TTL_SECONDS = 30 * 60
// Wrong second-factor codes a reset link survives before it is used up.
const RESET_MAX_CODE_ATTEMPTS = 5
// Per target address, whoever asks: enough for a person who lost a mail, too few to flood a mailbox.
export const MAILS_PER_ADDRESS = { max: 5, windowMs: 60 * 60_000 }

// Long enough for any link, short enough that nobody posts a novel: a token is 43 characters.
const Token = Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_-]+$', description: 'the token from the mailed link' })
const CodeField = Type.String({ minLength: 6, maxLength: 64, pattern: '^[A-Za-z0-9 -]+$', description: 'a TOTP code or a recovery code (required when the account has two-step sign-in)' })

const Accepted = Type.Object({}, { additionalProperties: false, description: 'Accepted' })

/**
 * Starts the proof that `email` belongs to the user: a verification link to it, or, when another
 * account's verified address already is `email`, a mail telling that address's owner so (the
 * requester learns nothing either way). Run it in the request's transaction.
 */
export async function requestEmailVerification (tx: Db, app: FastifyInstance, request: FastifyRequest, user: { id: string, username: string }, email: string): Promise<void> {
  // Both outcomes void the requester's earlier link first: if only a free address did, whether that
  // link still worked afterwards would tell the requester that the address is taken.
  await lockUser(tx, user.id)
  await voidSecrets(tx, user.id, 'email_verification')
  const owner = await findUserByVerifiedEmail(tx, email)
  if (owner !== undefined && owner.id !== user.id) {
    await queueMail(tx, app, request, email, 'email_in_use', notificationMail('email_in_use', mailContext(app, request, owner.username)))
  } else {
    // The address waits in the secret, not on the account: it is the user's only once proven.
    const token = await issueSecret(tx, {
      kind: 'email_verification', userId: user.id, ttlSeconds: VERIFICATION_TTL_SECONDS, data: { email },
    })
    const link = `${app.config.appUrl}/#/verify-email?token=${token}`
    await queueMail(tx, app, request, email, 'verify_email', linkMail('verify_email', mailContext(app, request, user.username), link))
  }
  await request.audit(tx, 'email_change_requested', { userId: user.id, actorId: user.id })
}

/**
 * E-mail routes (API.md, "E-mail: verification, recovery, notifications"). Registered only when the
 * server can send mail (SMTP_URL, or the development outbox): otherwise they do not exist (404).
 */
const emailRoutes: FastifyPluginAsyncTypebox = async (app) => {
  /** Reset requests still being worked on after their answer went out. */
  const afterAnswer = new Set<Promise<void>>()
  app.addHook('onClose', async () => { await Promise.all(afterAnswer) })

  /**
   * Counts one more mail asked for `email` (reset links and verification links apart), for any
   * address, known or not, so that a refusal says nothing about which exist. The seconds to wait
   * when over the limit; undefined when not.
   */
  async function overAddressLimit (purpose: 'forgot' | 'verify', email: string): Promise<number | undefined> {
    const { current, ttl } = await app.rateCounters.increment(`${purpose}-address:${email.toLowerCase()}`, MAILS_PER_ADDRESS.windowMs)
    return current > MAILS_PER_ADDRESS.max ? Math.max(1, Math.ceil(ttl / 1000)) : undefined
  }

  function refuseForAddress (reply: FastifyReply, seconds: number): never {
    app.metrics.rateLimitRefusals.inc({ limit: 'credentials_account' })
    reply.header('retry-after', String(seconds))
    throw new RateLimited(`${seconds} seconds`)
  }

  /**
   * A reset link to the account whose verified address this is, if any; nothing kept or sent
   * otherwise. `onlyForUserId`: only if that account is this one (a request let past the address's
   * limit by its device cookie).
   */
  async function sendResetLink (request: FastifyRequest, email: string, onlyForUserId?: string): Promise<void> {
    const user = await findUserByVerifiedEmail(app.db, email)
    if (user === undefined || (onlyForUserId !== undefined && user.id !== onlyForUserId)) return
    await app.db.transaction(async (tx) => {
      if (!await lockUser(tx, user.id)) return
      const token = await issueSecret(tx, { kind: 'password_reset', userId: user.id, ttlSeconds: RESET_TTL_SECONDS, supersede: true })
      const link = `${app.config.appUrl}/#/reset-password?token=${token}`
      await queueMail(tx, app, request, email, 'password_reset', linkMail('password_reset', mailContext(app, request, user.username), link))
      await request.audit(tx, 'password_reset_requested', { userId: user.id, actorId: null })
    })
    // The answer is already out: no onResponse left to wake the sender.
    app.mailer.wake()
  }

  app.post('/email', {
    preHandler: app.tokenRequired(),
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['email'],
      summary: 'Set or change the address: a verification link goes to the new one (the old one stays until it is used)',
      security: signedIn,
      body: Type.Object({ email: EmailAddress, currentPassword: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }) }, { additionalProperties: false }),
      response: {
        202: Accepted,
        ...failures({
          401: '`BAD_CREDENTIALS` (the current password is wrong), or the session ones',
          429: '`RATE_LIMITED`: per client address, per account, or 5 requests an hour for one target address, whoever asks',
        }),
      },
    },
  }, async (request, reply) => {
    const { id, username } = request.user
    const account = accountKeyOfUser(id)
    await app.accountLimit.assertNotLimited(request, reply, account)
    const user = await findUserWithHashById(app.db, id)
    if (!user || !await verifyPassword(user.passwordHash, request.body.currentPassword)) {
      await app.accountLimit.recordFailure(request, account)
      throw new WrongPassword()
    }
    // Each request mails the address asked for: someone with an account must not flood another's mailbox.
    const wait = await overAddressLimit('verify', request.body.email)
    if (wait !== undefined) refuseForAddress(reply, wait)
    await app.db.transaction((tx) => requestEmailVerification(tx, app, request, { id, username }, request.body.email))
    return reply.code(202).send({})
  })

  app.post('/email/verify', {
    schema: {
      tags: ['email'],
      summary: 'Use a verification link: the address becomes the account\'s (the old one is told)',
      body: Type.Object({ token: Token }, { additionalProperties: false }),
      response: {
        200: UserEnvelope,
        ...failures({ 401: '`EMAIL_TOKEN_INVALID`: unknown, expired, used, or replaced by a newer link' }),
      },
    },
  }, async (request) => {
    const user = await app.db.transaction(async (tx) => {
      // Used inside the transaction: if the address was taken meanwhile, the link stays as it was.
      const secret = await consumeSecret(tx, 'email_verification', request.body.token)
      const email = secret?.data.email
      if (secret === undefined || secret.userId === null || typeof email !== 'string') throw new EmailTokenInvalid()
      const before = await findEmailOf(tx, secret.userId)
      if (before === undefined) throw new EmailTokenInvalid()
      const updated = await setVerifiedEmail(tx, secret.userId, email)
      if (updated === undefined) throw new EmailTokenInvalid()
      if (before.email !== null && before.email.toLowerCase() !== email.toLowerCase()) {
        await queueMail(tx, app, request, before.email, 'email_changed', notificationMail('email_changed', mailContext(app, request, before.username)))
      }
      await request.audit(tx, 'email_verified', { userId: secret.userId, actorId: secret.userId, detail: { changed: before.email !== null } })
      return updated
    })
    return { user }
  })

  app.post('/password/forgot', {
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['email'],
      summary: 'Ask for a password-reset link: the same answer whatever the address',
      description: 'A mail goes out only where a verified address matches; the answer and its timing are the same for a known, an unknown and an unverified address.',
      body: Type.Object({ email: EmailAddress }, { additionalProperties: false }),
      response: { 202: Accepted },
    },
  }, async (request, reply) => {
    const { email } = request.body
    // Counted for every address, known or not, so a 429 says nothing about which exist.
    const wait = await overAddressLimit('forgot', email)
    // The limit must not be a weapon: a stranger asking five times an hour for someone's address
    // would keep its owner from resetting. A browser that signed in as an account before (its device
    // cookie, as for the sign-in lockout) goes past it, and gets a link only if the address is that
    // account's own: the cookie floods nobody else's mailbox. Whether it passes depends on the
    // cookie alone, never on the address, so the answer still tells nothing.
    const device = wait === undefined ? undefined : app.readDeviceCookie(request)
    if (wait !== undefined && device === undefined) refuseForAddress(reply, wait)
    // The answer goes out before the address is even looked up, so its timing cannot tell a known
    // address from an unknown one (measured: with the lookup and the transaction before the answer,
    // a known address took ~7 ms more at the median, a commit against a rollback). The work follows
    // once the answer is sent; the app waits for it on close.
    reply.raw.once('finish', () => {
      const work = sendResetLink(request, email, device?.userId)
        .catch((error: unknown) => { request.log.warn({ err: error }, 'password-reset request failed after the answer; the user may ask again') })
        .finally(() => afterAnswer.delete(work))
      afterAnswer.add(work)
    })
    return reply.code(202).send({})
  })

  app.post('/password/reset', {
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['email'],
      summary: 'Use a reset link: a new password, every session signed out',
      description: 'An account with two-step sign-in also needs `code` (a TOTP code or a recovery code): a reset never skips the second factor.',
      body: Type.Object({ token: Token, newPassword: Password, code: Type.Optional(CodeField) }, { additionalProperties: false }),
      response: {
        204: NoContent,
        ...failures({
          400: '`FST_ERR_VALIDATION` or `PASSWORD_TOO_COMMON`',
          401: '`RESET_TOKEN_INVALID` (unknown, expired, used, or replaced by a newer link) or `MFA_INVALID` (the account has two-step sign-in and `code` is missing or wrong)',
        }),
      },
    },
  }, async (request, reply) => {
    const { token, newPassword, code } = request.body
    // Refused before the link is looked at, so a weak choice does not use the link up.
    if (isCommonPassword(newPassword)) throw new CommonPassword()
    const secret = await findLiveSecret(app.db, 'password_reset', token)
    if (secret === undefined || secret.userId === null) throw new ResetTokenInvalid()
    const userId = secret.userId

    // A mailbox alone must not undo a second factor: the code is checked as at sign-in.
    const totp = await findTotp(app.db, userId)
    let usedRecoveryCode = false
    if (totp?.enabled === true) {
      const account = accountKeyOfUser(userId)
      await app.accountLimit.assertNotLimited(request, reply, account)
      const used = code === undefined ? undefined : await verifyTotpOrRecoveryCode(app.db, app.secretBox, userId, code)
      if (code !== undefined) app.metrics.secondFactorChecks.inc({ method: secondFactorKindOf(code), outcome: used === undefined ? 'failure' : 'success' })
      if (used === undefined) {
        if (code !== undefined) {
          await app.accountLimit.recordFailure(request, account)
          await recordFailedAttempt(app.db, 'password_reset', token, RESET_MAX_CODE_ATTEMPTS)
          await request.audit(app.db, 'mfa_failed', { userId, actorId: null, detail: { stage: 'password-reset' } })
        }
        throw new MfaInvalid()
      }
      usedRecoveryCode = used === 'recovery_code'
    }

    const passwordHash = await hashPassword(newPassword)
    await app.db.transaction(async (tx) => {
      // Single use: of two resets with one link at once, one commits; the other changes nothing.
      if (await consumeSecret(tx, 'password_reset', token) === undefined) throw new ResetTokenInvalid()
      await setPasswordHash(tx, userId, passwordHash)
      const revoked = await revokeAllSessions(tx, userId)
      // A sign-in half done with the old password must not finish after the reset.
      await voidSecrets(tx, userId, 'mfa_pending')
      await request.audit(tx, 'password_reset', { userId, actorId: userId, detail: { revokedSessions: revoked, by: 'email' } })
      await queueNotification(tx, app, userId, 'password_reset_done', request)
      if (usedRecoveryCode) {
        await auditAndNotify(tx, request, userId, 'recovery_code_used', { stage: 'password-reset' })
      }
    })
    return reply.code(204).send(null)
  })
}

export default emailRoutes
