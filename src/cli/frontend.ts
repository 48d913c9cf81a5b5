import { ConfigError, loadConfig } from '../config.js'
import { startFrontend } from '../frontend-server.js'

// `npm run frontend`: the example frontend alone, on FRONTEND_PORT (4100), for an API started elsewhere.
try {
  const config = loadConfig(process.env)
  const port = config.frontendPort === 0 ? 4100 : config.frontendPort
  const server = await startFrontend(port, 'localhost')
  console.log(`example frontend at http://localhost:${port}`)
  const stop = () => { server.close().then(() => process.exit(0), () => process.exit(1)) }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : (error as Error).message)
  process.exitCode = 1
}
