import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Db } from '../src/db/client.js'
import { recordAuditEvent, type AuditType } from '../src/db/queries/audit.js'

export interface RequestAuditEvent {
  /** The user the event is about; by default the actor. */
  userId?: string | null
  /** Who caused it; by default the signed-in caller, or null for an anonymous one. */
  actorId?: string | null
  /** Never a password, token or cookie: only names, ids, roles and counts. */
  detail?: Record<string, unknown>
}

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Records an audit event with `db` (the transaction of the change it records, wherever there is
     * one), filling in what the request knows: the client address, the signed-in caller, its logger.
     */
    audit (db: Db, type: AuditType, event?: RequestAuditEvent): Promise<void>
  }
}

/** The one way a route writes to the audit log; the CLI calls recordAuditEvent with no request. */
export default fp(async (app) => {
  app.decorateRequest('audit', function audit (this: FastifyRequest, db: Db, type: AuditType, event: RequestAuditEvent = {}) {
    // request.user is set by tokenRequired; anonymous routes (register, login) name the actor.
    const caller = (this.user as { id?: string } | null | undefined)?.id ?? null
    const actorId = event.actorId === undefined ? caller : event.actorId
    return recordAuditEvent(db, this.log, {
      type,
      userId: event.userId === undefined ? actorId : event.userId,
      actorId,
      ip: this.ip,
      ...(event.detail === undefined ? {} : { detail: event.detail }),
    })
  })
}, { name: 'audit' })
