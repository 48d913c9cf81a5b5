import { createServer } from 'node:net'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { frontendOrigins, loadConfig, type Config } from './config.js'
import { developmentApi } from './frontend-config.js'
import { startFrontend } from './frontend-server.js'
import { describeStartupError } from './startup-errors.js'

// Requests in flight get this long to finish after SIGTERM; systemd's TimeoutStopSec is above it.
const SHUTDOWN_GRACE_MS = 10_000

// What the start has so far, for the one-line failure (the address) and the cleanup (the app).
const started: { config?: Config, app?: FastifyInstance } = {}

/**
 * The mistakes a start meets most (configuration, database, port) stop it with one line naming the
 * cause and the fix, exit 1; anything else keeps its stack trace.
 */
async function orExitWithOneLine<T> (step: () => T | Promise<T>): Promise<T> {
  try {
    return await step()
  } catch (error) {
    const { config, app } = started
    const line = describeStartupError(error, { databaseUrl: config?.databaseUrl, port: config?.port, host: config?.host })
    if (line === undefined) throw error
    console.error(line)
    // Closing releases the embedded database's lock and the pool before the exit.
    await app?.close().catch(() => {})
    process.exit(1)
  }
}

/** Fails with EADDRINUSE when the port is taken: found in a moment, not after opening the database. */
async function checkPortFree (port: number, host: string): Promise<void> {
  if (port === 0) return
  await new Promise<void>((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()))
  })
}

/** Pretty lines for a person at a terminal in development; JSON for everything else (log shippers). */
function wantsPrettyLogs (config: Config): boolean {
  if (config.isProduction || process.stdout.isTTY !== true) return false
  try {
    import.meta.resolve('pino-pretty') // a development dependency: absent from a production install
    return true
  } catch {
    return false
  }
}

const settings = started.config = await orExitWithOneLine(() => loadConfig(process.env))
await orExitWithOneLine(() => checkPortFree(settings.port, settings.host))
const server = started.app = await orExitWithOneLine(() => buildApp({ config: settings, prettyLogs: wantsPrettyLogs(settings) }))
await orExitWithOneLine(() => server.listen({ port: settings.port, host: settings.host }))

// The example frontend is a convenience: a port already in use costs a warning, not the API.
const frontendHost = settings.host === '127.0.0.1' ? 'localhost' : settings.host
const frontend = !settings.isProduction && settings.frontendPort !== 0
  ? await startFrontend(settings.frontendPort, frontendHost, developmentApi(settings.host, settings.port)).catch((error: unknown) => {
    server.log.warn(`example frontend not started: ${(error as Error).message} (set FRONTEND_PORT, or 0 for none)`)
    return undefined
  })
  : undefined
if (frontend !== undefined) {
  server.log.info(`example frontend at http://${frontendHost}:${settings.frontendPort} (API docs at http://${settings.host}:${settings.port}/api/docs)`)
  const refused = frontendOrigins(settings.frontendPort).filter((origin) => !settings.corsOrigins.includes(origin))
  if (refused.length > 0) {
    server.log.warn(`CORS_ORIGINS does not list ${refused.join(' or ')}: the example frontend there cannot call the API; add it to CORS_ORIGINS`)
  }
}

// SIGTERM/SIGINT: stop accepting, let requests in flight finish, close the pool, exit 0. A second
// signal, or the grace running out, exits at once.
closeWithGrace({ delay: SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
  if (err !== undefined) server.log.error({ err }, 'fatal error, shutting down')
  else server.log.info({ signal }, 'shutting down')
  // Node closes the connections that are idle when the server stops listening; a keep-alive one whose
  // request finishes afterwards would stay open until its idle timeout (72 s), holding the close past
  // the grace period (and exiting 1). Closing each as soon as it goes idle lets shutdown end with the
  // last request in flight.
  const sweep = setInterval(() => server.server.closeIdleConnections(), 100)
  try {
    await Promise.all([server.close(), frontend?.close()])
  } finally {
    clearInterval(sweep)
  }
})
