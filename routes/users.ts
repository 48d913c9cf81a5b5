import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { revokeAllSessions } from '../src/db/queries/sessions.js'
import { changeRole, deleteUser, findUserById, listUsers } from '../src/db/queries/users.js'
import { UserNotFound } from '../src/errors.js'
import { failures, IdParams, NoContent, Page, PageQuery, RoleSchema, signedIn, UserEnvelope, UserSchema } from '../src/schemas.js'

const ADMINS_ONLY = { 403: '`FORBIDDEN_ROLE`: admins only (or `CSRF_ORIGIN` on a state change from a foreign origin)' }
const NOT_FOUND = { 404: '`USER_NOT_FOUND`: no such user (a non-admin asking for someone else gets this too)' }
const LAST_ADMIN = { 409: '`LAST_ADMIN`: this would leave no admin' }

const usersRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const adminOnly = app.tokenRequired(['admin'])
  const anyUser = app.tokenRequired()

  app.get('/', {
    preHandler: adminOnly,
    schema: {
      tags: ['users'],
      summary: 'Every user, newest first (admin)',
      security: signedIn,
      querystring: Type.Object(PageQuery, { additionalProperties: false }),
      response: { 200: Page(UserSchema), ...failures(ADMINS_ONLY) },
    },
  }, async (request) => listUsers(app.db, request.query.limit, request.query.cursor))

  app.get('/:id', {
    preHandler: anyUser,
    schema: { tags: ['users'], summary: 'One user (admin, or that user)', security: signedIn, params: IdParams, response: { 200: UserEnvelope, ...failures(NOT_FOUND) } },
  }, async (request) => {
    const { id } = request.params
    // Someone else's account is "not found" to a non-admin: a 403 would confirm that it exists.
    if (request.user.role !== 'admin' && request.user.id !== id) throw new UserNotFound()
    const user = await findUserById(app.db, id)
    if (!user) throw new UserNotFound()
    return { user }
  })

  app.patch('/:id', {
    preHandler: adminOnly,
    schema: {
      tags: ['users'],
      summary: "Change a user's role (admin); their sessions go on with the new role",
      security: signedIn,
      params: IdParams,
      body: Type.Object({ role: RoleSchema }, { additionalProperties: false }),
      response: { 200: UserEnvelope, ...failures({ ...ADMINS_ONLY, ...NOT_FOUND, ...LAST_ADMIN }) },
    },
  }, async (request) => {
    const { role } = request.body
    const user = await app.db.transaction(async (tx) => {
      const changed = await changeRole(tx, request.params.id, role)
      if (changed) await request.audit(tx, 'role_changed', { userId: changed.id, detail: { role } })
      return changed
    })
    if (!user) throw new UserNotFound()
    return { user }
  })

  app.delete('/:id', {
    preHandler: anyUser,
    schema: {
      tags: ['users'],
      summary: 'Delete a user with their tasks and sessions (admin, or that user)',
      security: signedIn,
      params: IdParams,
      response: { 204: NoContent, ...failures({ ...NOT_FOUND, ...LAST_ADMIN }) },
    },
  }, async (request, reply) => {
    const { id } = request.params
    const isSelf = request.user.id === id
    if (request.user.role !== 'admin' && !isSelf) throw new UserNotFound()
    const user = await app.db.transaction(async (tx) => {
      const deleted = await deleteUser(tx, id)
      if (deleted) await request.audit(tx, 'user_deleted', { userId: deleted.id, detail: { username: deleted.username } })
      return deleted
    })
    if (!user) throw new UserNotFound()
    if (isSelf) app.clearAuthCookies(reply)
    return reply.code(204).send(null)
  })

  app.delete('/:id/sessions', {
    preHandler: adminOnly,
    schema: {
      tags: ['users'],
      summary: 'End every session of a user (admin)',
      security: signedIn,
      params: IdParams,
      response: { 204: NoContent, ...failures({ ...ADMINS_ONLY, ...NOT_FOUND }) },
    },
  }, async (request, reply) => {
    const { id } = request.params
    await app.db.transaction(async (tx) => {
      if (!await findUserById(tx, id)) throw new UserNotFound()
      const revoked = await revokeAllSessions(tx, id)
      await request.audit(tx, 'session_revoked', { userId: id, detail: { all: true, revoked } })
    })
    return reply.code(204).send(null)
  })
}

export default usersRoutes
