import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AUDIT_TYPES, listAuditEvents } from '../src/db/queries/audit.js'
import { failures, DateTime, Page, PageQuery, signedIn, Uuid } from '../src/schemas.js'

const AuditEvent = Type.Object({
  id: Uuid,
  at: DateTime,
  type: Type.String(),
  userId: Type.Union([Uuid, Type.Null()]),
  actorId: Type.Union([Uuid, Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  detail: Type.Record(Type.String(), Type.Unknown()),
})

const auditRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/', {
    preHandler: app.tokenRequired(['admin']),
    schema: {
      tags: ['audit'],
      summary: 'The audit log, newest first (admin)',
      security: signedIn,
      querystring: Type.Object({
        ...PageQuery,
        userId: Type.Optional(Uuid),
        type: Type.Optional(Type.Union(AUDIT_TYPES.map((type) => Type.Literal(type)))),
      }, { additionalProperties: false }),
      response: { 200: Page(AuditEvent), ...failures({ 403: '`FORBIDDEN_ROLE`: admins only' }) },
    },
  }, async (request) => {
    const { limit, cursor, userId, type } = request.query
    return listAuditEvents(app.db, { userId, type }, limit, cursor)
  })
}

export default auditRoutes
