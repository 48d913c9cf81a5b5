import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { prepareTaskQueries } from '../src/db/queries/tasks.js'
import { TaskNotFound } from '../src/errors.js'
import { DateTime, failures, IdParams, NoContent, Page, PageQuery, signedIn, TaskDescription, TaskTitle, Uuid } from '../src/schemas.js'

// Another user's task is simply not found: the same answer as a task that does not exist.
const TASK_NOT_FOUND = { 404: '`TASK_NOT_FOUND`: no task of yours has this id' }

const Task = Type.Object({
  id: Uuid,
  title: Type.String(),
  description: Type.String(),
  done: Type.Boolean(),
  ownerId: Uuid,
  createdAt: DateTime,
  updatedAt: DateTime,
})
const TaskEnvelope = Type.Object({ task: Task })

/**
 * Every route works on the caller's own tasks only. The token is verified here; the session is
 * checked by each query itself, in the same round trip (see prepareTaskQueries).
 */
const tasksRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const tasks = prepareTaskQueries(app.db, app.config.mfaRequiredRoles)
  app.addHook('preHandler', app.tokenVerified)

  app.get('/', {
    schema: {
      tags: ['tasks'],
      summary: 'List your tasks, newest first',
      security: signedIn,
      querystring: Type.Object(PageQuery, { additionalProperties: false }),
      response: { 200: Page(Task) },
    },
  }, async (request) => tasks.list(request.caller, request.query.limit, request.query.cursor))

  app.post('/', {
    schema: {
      tags: ['tasks'],
      summary: 'Create a task',
      security: signedIn,
      body: Type.Object({
        title: TaskTitle,
        description: Type.Optional(TaskDescription),
        done: Type.Optional(Type.Boolean()),
      }, { additionalProperties: false }),
      response: { 201: TaskEnvelope },
    },
  }, async (request, reply) => {
    // The schema made sure something visible is left once the surrounding spaces go.
    const task = await tasks.create(request.caller, { ...request.body, title: request.body.title.trim() })
    return reply.code(201).send({ task })
  })

  app.get('/:id', {
    schema: { tags: ['tasks'], summary: 'One of your tasks', security: signedIn, params: IdParams, response: { 200: TaskEnvelope, ...failures(TASK_NOT_FOUND) } },
  }, async (request) => {
    const task = await tasks.get(request.caller, request.params.id)
    if (!task) throw new TaskNotFound()
    return { task }
  })

  app.patch('/:id', {
    schema: {
      tags: ['tasks'],
      summary: 'Change some fields of one of your tasks',
      security: signedIn,
      params: IdParams,
      body: Type.Object({
        title: Type.Optional(TaskTitle),
        description: Type.Optional(TaskDescription),
        done: Type.Optional(Type.Boolean()),
      }, { additionalProperties: false, minProperties: 1 }),
      response: { 200: TaskEnvelope, ...failures(TASK_NOT_FOUND) },
    },
  }, async (request) => {
    const { title, ...rest } = request.body
    const task = await tasks.update(request.caller, request.params.id, title === undefined ? rest : { ...rest, title: title.trim() })
    if (!task) throw new TaskNotFound()
    return { task }
  })

  app.delete('/:id', {
    schema: { tags: ['tasks'], summary: 'Delete one of your tasks', security: signedIn, params: IdParams, response: { 204: NoContent, ...failures(TASK_NOT_FOUND) } },
  }, async (request, reply) => {
    if (!await tasks.remove(request.caller, request.params.id)) throw new TaskNotFound()
    return reply.code(204).send(null)
  })
}

export default tasksRoutes
