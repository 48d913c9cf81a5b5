import { join } from 'node:path'
import fastifyStatic from '@fastify/static'
import Fastify, { type FastifyInstance } from 'fastify'
import { projectRoot } from './paths.js'

/**
 * Serves the example frontend (deploy/frontend/, plain static files) on its own origin, so that a
 * newcomer can click through the cross-origin setup at once. Development only: in production Nginx
 * serves these files.
 */
export async function startFrontend (port: number, host: string): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(fastifyStatic, { root: join(projectRoot(), 'deploy', 'frontend') })
  await app.listen({ port, host })
  return app
}
