import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig, type Config } from './config.js'
import { startFrontend } from './frontend-server.js'

// Requests in flight get this long to finish after SIGTERM; systemd's TimeoutStopSec is above it.
const SHUTDOWN_GRACE_MS = 10_000

/** A configuration mistake stops the start with one line naming the variable, not a stack trace. */
async function orExitOnConfigError<T> (step: () => T | Promise<T>): Promise<T> {
  try {
    return await step()
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message)
      process.exit(1)
    }
    throw error
  }
}

const config: Config = await orExitOnConfigError(() => loadConfig(process.env))
const app = await orExitOnConfigError(() => buildApp({ config }))

await app.listen({ port: config.port, host: config.host })

// The example frontend is a convenience: a port already in use costs a warning, not the API.
const frontend = !config.isProduction && config.frontendPort !== 0
  ? await startFrontend(config.frontendPort, config.host === '127.0.0.1' ? 'localhost' : config.host).catch((error: unknown) => {
    app.log.warn({ err: error }, `example frontend not started on port ${config.frontendPort} (set FRONTEND_PORT, or 0 for none)`)
    return undefined
  })
  : undefined
if (frontend !== undefined) {
  app.log.info(`example frontend at http://localhost:${config.frontendPort} (API docs at http://${config.host}:${config.port}/api/docs)`)
}

// SIGTERM/SIGINT: stop accepting, let requests in flight finish, close the pool, exit 0. A second
// signal, or the grace running out, exits at once.
closeWithGrace({ delay: SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'fatal error, shutting down')
  else app.log.info({ signal }, 'shutting down')
  // Node closes the connections that are idle when the server stops listening; a keep-alive one whose
  // request finishes afterwards would stay open until its idle timeout (72 s), holding the close past
  // the grace period (and exiting 1). Closing each as soon as it goes idle lets shutdown end with the
  // last request in flight.
  const sweep = setInterval(() => app.server.closeIdleConnections(), 100)
  try {
    await Promise.all([app.close(), frontend?.close()])
  } finally {
    clearInterval(sweep)
  }
})
