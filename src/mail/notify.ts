import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Db } from '../db/client.js'
import { findEmailOf } from '../db/queries/email.js'
import { enqueueMail } from '../db/queries/mail-outbox.js'
import type { AuditType } from '../db/queries/audit.js'
import type { SecretBox } from '../secret-box.js'
import { notificationMail, type ChangeOrigin, type MailContext, type NotificationKind, type RenderedMail, type RequestOrigin } from './templates.js'

/**
 * What writing a mail to the outbox takes where the e-mail features are on: the server has it in its
 * config; the users CLI reads it from its own environment (loadMailConfig).
 */
export interface MailSettings {
  /** The frontend's base URL (APP_URL), named in every mail. */
  readonly appUrl: string
  /** Seals the outbox row's bodies (ENCRYPTION_KEY). */
  readonly secretBox: SecretBox
}

/** The server's settings; undefined when the e-mail features are off. */
const mailSettingsOf = (app: FastifyInstance): MailSettings | undefined =>
  app.config.mailEnabled ? { appUrl: app.config.appUrl, secretBox: app.secretBox } : undefined

const requestOrigin = (request: FastifyRequest): RequestOrigin => ({ at: new Date(), ip: request.ip, userAgent: request.headers['user-agent'] })

/** Where the request came from, for the "was it you?" line. */
export function mailContext (app: FastifyInstance, request: FastifyRequest, username: string): MailContext {
  return { username, appUrl: app.config.appUrl, origin: requestOrigin(request) }
}

/**
 * Queues `mail` to `to` in the caller's transaction; the sender is woken once the request's answer
 * is out (by then the transaction has committed).
 */
export async function queueMail (tx: Db, app: FastifyInstance, request: FastifyRequest, to: string, kind: string, mail: RenderedMail): Promise<void> {
  if (!app.config.mailEnabled) return
  await enqueueMail(tx, app.secretBox, { to, kind, ...mail })
  request.queuedMail = true
}

/**
 * Tells a user by mail about a security change to their account, if mail is on (`settings`) and they
 * have a verified address; `origin` says who made the change. Call it inside the transaction of the
 * change (passkeys, MFA, passwords…): the mail goes out if and only if the change commits, sent by
 * whichever server instance claims it. Returns whether a mail was queued. Notifications never carry
 * a token.
 */
export async function enqueueNotification (
  tx: Db, settings: MailSettings | undefined, userId: string, kind: NotificationKind, origin: ChangeOrigin
): Promise<boolean> {
  if (settings === undefined) return false
  const user = await findEmailOf(tx, userId)
  if (user === undefined || user.email === null) return false
  const mail = notificationMail(kind, { username: user.username, appUrl: settings.appUrl, origin })
  await enqueueMail(tx, settings.secretBox, { to: user.email, kind, ...mail })
  return true
}

/** enqueueNotification for a change a request made: the sender is woken once the answer is out. */
export async function queueNotification (
  tx: Db, app: FastifyInstance, userId: string, kind: NotificationKind, request: FastifyRequest
): Promise<boolean> {
  const queued = await enqueueNotification(tx, mailSettingsOf(app), userId, kind, requestOrigin(request))
  if (queued) request.queuedMail = true
  return queued
}

/**
 * A security change the user made to their own account (or that one of their secrets made): the
 * audit event and the mail that tells them, both in the change's transaction, under one name.
 */
export async function auditAndNotify (
  tx: Db, request: FastifyRequest, userId: string, kind: AuditType & NotificationKind, detail?: Record<string, unknown>
): Promise<void> {
  await request.audit(tx, kind, { userId, actorId: userId, ...(detail === undefined ? {} : { detail }) })
  await queueNotification(tx, request.server, userId, kind, request)
}
