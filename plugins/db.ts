import fp from 'fastify-plugin'
import { openDatabase, type Database, type Db } from '../src/db/client.js'
import { ensureAdmin } from '../src/db/queries/admin-bootstrap.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Db
    database: Database
  }
}

export interface DbPluginOptions {
  /** A database opened by the caller (tests, CLI); otherwise one is opened from the config. */
  database?: Database
}

/**
 * Opens the database named by the config (postgres.js for DATABASE_URL, PGlite in DATA_DIR otherwise),
 * applies pending migrations when MIGRATE_ON_START is on, creates the bootstrap admin, and closes the
 * pool when the app closes.
 */
export default fp<DbPluginOptions>(async (app, options) => {
  const { config } = app
  const ownsDatabase = options.database === undefined
  if (ownsDatabase && config.databaseUrl === undefined && !config.dataDir.startsWith('memory://')) {
    app.log.info({ dataDir: config.dataDir }, 'opening the embedded database (a new one takes a few seconds to initialise)')
  }
  const database = options.database ?? await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, prepare: config.databasePrepare })
  if (ownsDatabase) app.addHook('onClose', async () => { await database.close() })
  if (config.migrateOnStart) await database.migrate()
  if (config.adminUsername !== undefined && config.adminPassword !== undefined) {
    const created = await ensureAdmin(database.db, app.log, config.adminUsername, config.adminPassword)
    if (created) app.log.info({ username: config.adminUsername }, 'created the bootstrap admin')
  }
  database.telemetry.useTracer(app.tracer)
  app.metrics.setPoolSource(() => database.telemetry.poolStats())
  // A database the caller opened outlives this app: it must stop making spans for a closed provider.
  if (!ownsDatabase) app.addHook('onClose', async () => { database.telemetry.useTracer(undefined) })
  app.decorate('database', database)
  app.decorate('db', database.db)
}, { name: 'db', dependencies: ['config', 'tracing', 'metrics'] })
