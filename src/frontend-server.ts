import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import fastifyStatic from '@fastify/static'
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import { configScript, indexHtml, pageCsp, type ApiLocation } from './frontend-config.js'
import { vendorFolders, vendorSource } from './frontend-vendor.js'
import { projectRoot } from './paths.js'

export const frontendRoot = () => join(projectRoot(), 'deploy', 'frontend')

/**
 * Serves the example frontend (deploy/frontend/, plain static files) on its own origin, so that a
 * newcomer can click through the cross-origin setup at once. Development only: in production Nginx
 * serves these files. The two files that say where the API is, config.js and index.html's CSP, are
 * generated from `api`, so the page follows PORT and HOST.
 */
export async function startFrontend (port: number, host: string, api: ApiLocation): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  const page = indexHtml(readFileSync(join(frontendRoot(), 'index.html'), 'utf8'), api)
  const script = configScript(api)
  const sendPage = async (_request: unknown, reply: FastifyReply) => reply
    .header('content-security-policy', pageCsp(api))
    .header('cache-control', 'no-cache')
    .type('text/html; charset=utf-8')
    .send(page)
  app.get('/', sendPage)
  app.get('/index.html', sendPage)
  app.get('/config.js', async (_request, reply) => reply.header('cache-control', 'no-cache').type('text/javascript; charset=utf-8').send(script))
  // vendor/ straight from node_modules, so `npm run dev` needs no build first.
  const folders = vendorFolders()
  app.get<{ Params: { name: string } }>('/vendor/:name', async (request, reply) => {
    const source = vendorSource(request.params.name)
    if (source === undefined || folders.includes(request.params.name)) return reply.code(404).send({ message: 'Not found' })
    return reply.type('text/javascript; charset=utf-8').send(await readFile(source))
  })
  for (const name of folders) {
    await app.register(fastifyStatic, { root: vendorSource(name)!, prefix: `/vendor/${name}/`, decorateReply: false, index: false })
  }
  await app.register(fastifyStatic, { root: frontendRoot(), index: false, wildcard: true })
  await app.listen({ port, host })
  return app
}
