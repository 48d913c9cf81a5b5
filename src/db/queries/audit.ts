import { and, desc, eq } from 'drizzle-orm'
import type { Db } from '../client.js'
import { auditEvents } from '../schema.js'
import { decodeCursor, olderThan, toPage } from '../pagination.js'

export const AUDIT_TYPES = [
  'register', 'login', 'login_failed', 'logout', 'logout_all', 'refresh_reused', 'password_changed',
  'session_revoked', 'role_changed', 'user_deleted', 'access_denied', 'user_created', 'password_reset',
  'refresh_grace', 'password_change_failed',
  'mfa_enabled', 'mfa_disabled', 'mfa_failed', 'recovery_codes_regenerated', 'recovery_code_used',
  'oidc_linked', 'oidc_unlinked',
  'email_change_requested', 'email_verified', 'password_reset_requested',
  'passkey_added', 'passkey_removed',
] as const
export type AuditType = typeof AUDIT_TYPES[number]

/** Where the structured copy of each event goes: the request's logger, or nothing for the CLI. */
export interface AuditLog { info (details: object, message: string): void }

export interface AuditEvent {
  type: AuditType
  /** The user the event is about. */
  userId?: string | null
  /** Who caused it: the user themself, an admin, or null for the CLI and anonymous callers. */
  actorId?: string | null
  ip?: string | null
  /** Never a password, token or cookie: only names, ids, roles and counts. */
  detail?: Record<string, unknown>
}

/**
 * Writes the event with `db`, which is the transaction of the change it records wherever there is
 * one, so the log holds exactly the changes that happened; then mirrors it as a structured log line.
 */
export async function recordAuditEvent (db: Db, log: AuditLog, event: AuditEvent) {
  const [row] = await db.insert(auditEvents).values({
    type: event.type,
    userId: event.userId ?? null,
    actorId: event.actorId ?? null,
    ip: event.ip ?? null,
    detail: event.detail ?? {},
  }).returning({ id: auditEvents.id })
  log.info({ audit: { ...event, id: row?.id } }, `audit ${event.type}`)
}

export interface AuditFilter { userId?: string | undefined, type?: string | undefined }

/** Newest first, a keyset page at a time, optionally for one subject user and/or one event type. */
export async function listAuditEvents (db: Db, filter: AuditFilter, limit: number, cursor: string | undefined) {
  const after = cursor === undefined ? undefined : decodeCursor(cursor)
  const rows = await db.select().from(auditEvents)
    .where(and(
      filter.userId === undefined ? undefined : eq(auditEvents.userId, filter.userId),
      filter.type === undefined ? undefined : eq(auditEvents.type, filter.type),
      after === undefined ? undefined : olderThan(auditEvents.at, auditEvents.id, after.at.toISOString(), after.id)
    ))
    .orderBy(desc(auditEvents.at), desc(auditEvents.id))
    .limit(limit + 1)
  return toPage(rows, limit, (event) => ({ at: event.at, id: event.id }))
}
