import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import fastifyStatic from '@fastify/static'
import Fastify, { type FastifyInstance } from 'fastify'
import { vendorSource } from './frontend-vendor.js'
import { projectRoot } from './paths.js'

/**
 * Serves the example frontend (deploy/frontend/, plain static files) on its own origin, so that a
 * newcomer can click through the cross-origin setup at once. Development only: in production Nginx
 * serves these files.
 */
export async function startFrontend (port: number, host: string): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  // vendor/ straight from node_modules, so `npm run dev` needs no build first.
  app.get<{ Params: { name: string } }>('/vendor/:name', async (request, reply) => {
    const source = vendorSource(request.params.name)
    if (source === undefined) return reply.code(404).send({ message: 'Not found' })
    return reply.type('text/javascript; charset=utf-8').send(await readFile(source))
  })
  await app.register(fastifyStatic, { root: join(projectRoot(), 'deploy', 'frontend') })
  await app.listen({ port, host })
  return app
}
