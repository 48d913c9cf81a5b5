import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from '../config.js'
import { configScript, developmentApi, indexHtml, parseApiOrigin, SAME_ORIGIN } from '../frontend-config.js'
import { frontendRoot, startFrontend } from '../frontend-server.js'

const USAGE = `Usage:
  npm run frontend                                   serve the example frontend on FRONTEND_PORT (4100)
                                                     for the API on HOST:PORT (127.0.0.1:8086)
  npm run frontend -- build <folder> [--api <origin>]
                                                     write a copy to deploy (Nginx's FRONTEND_ROOT) whose
                                                     config.js and CSP point at <origin>, e.g.
                                                     https://api.example.com; without --api, the page's
                                                     own origin (the API under /api behind the same Nginx)`

function build (folder: string, apiOrigin: string | undefined): void {
  const api = apiOrigin === undefined ? SAME_ORIGIN : { origin: parseApiOrigin(apiOrigin) }
  const out = resolve(folder)
  if (out === resolve(frontendRoot())) throw new Error('build into another folder than deploy/frontend itself')
  if (existsSync(join(out, 'package.json'))) throw new Error(`${out} holds a package.json: build into a folder of its own`)
  cpSync(frontendRoot(), out, { recursive: true })
  writeFileSync(join(out, 'config.js'), configScript(api))
  writeFileSync(join(out, 'index.html'), indexHtml(readFileSync(join(frontendRoot(), 'index.html'), 'utf8'), api))
  console.log(`wrote the frontend to ${out} (API: ${apiOrigin ?? 'the page\'s own origin'})`)
}

async function serve (): Promise<void> {
  const config = loadConfig(process.env)
  const port = config.frontendPort === 0 ? 4100 : config.frontendPort
  const server = await startFrontend(port, 'localhost', developmentApi(config.host, config.port))
  console.log(`example frontend at http://localhost:${port} (for the API on http://${config.host}:${config.port})`)
  const stop = () => { server.close().then(() => process.exit(0), () => process.exit(1)) }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

try {
  const { positionals, values } = parseArgs({ allowPositionals: true, options: { api: { type: 'string' }, help: { type: 'boolean', short: 'h' } } })
  const [command, folder, ...rest] = positionals
  if (values.help === true) {
    console.log(USAGE)
  } else if (command === undefined && values.api === undefined) {
    await serve()
  } else if (command === 'build' && folder !== undefined && rest.length === 0) {
    build(folder, values.api)
  } else {
    console.error(USAGE)
    process.exitCode = 2
  }
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : `error: ${(error as Error).message}`)
  process.exitCode = 1
}
