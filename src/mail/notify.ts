import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Db } from '../db/client.js'
import { findEmailOf } from '../db/queries/email.js'
import { enqueueMail } from '../db/queries/mail-outbox.js'
import type { AuditType } from '../db/queries/audit.js'
import { notificationMail, type MailContext, type NotificationKind, type RenderedMail } from './templates.js'

/** Where the request came from, for the "was it you?" line. */
export function mailContext (app: FastifyInstance, request: FastifyRequest, username: string): MailContext {
  return {
    username,
    appUrl: app.config.appUrl,
    origin: { at: new Date(), ip: request.ip, userAgent: request.headers['user-agent'] },
  }
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
 * Tells a user by mail about a security change to their account, if they have a verified address.
 * Call it inside the transaction of the change (passkeys, MFA, passwords…): the mail goes out if and
 * only if the change commits. Returns whether a mail was queued. Notifications never carry a token.
 */
export async function queueNotification (
  tx: Db, app: FastifyInstance, userId: string, kind: NotificationKind, request: FastifyRequest
): Promise<boolean> {
  if (!app.config.mailEnabled) return false
  const user = await findEmailOf(tx, userId)
  if (user === undefined || user.email === null) return false
  await queueMail(tx, app, request, user.email, kind, notificationMail(kind, mailContext(app, request, user.username)))
  return true
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
