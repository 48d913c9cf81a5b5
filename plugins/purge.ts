import fp from 'fastify-plugin'
import { purgeEndedRows } from '../src/db/queries/purge.js'

// Hourly, and a minute after start (not at once: a start is busy enough). Each instance tries;
// the advisory lock lets one of them work per round.
export const PURGE_EVERY_MS = 60 * 60_000
const FIRST_PURGE_AFTER_MS = 60_000

/** Deletes ended sessions and spent one-time secrets on a schedule (see src/db/queries/purge.ts). */
export default fp(async (app) => {
  let running: Promise<void> | undefined
  const purge = () => {
    running ??= purgeEndedRows(app.db)
      .then((result) => { if (result !== undefined) app.log.info({ purged: result }, 'purged ended sessions and spent one-time secrets') })
      // A database outage costs a round, nothing more: the next one catches up.
      .catch((error: unknown) => { app.log.warn({ err: error }, 'purge of ended rows failed; retrying next round') })
      .finally(() => { running = undefined })
  }
  const first = setTimeout(purge, FIRST_PURGE_AFTER_MS)
  const every = setInterval(purge, PURGE_EVERY_MS)
  first.unref()
  every.unref()
  app.addHook('onClose', async () => {
    clearTimeout(first)
    clearInterval(every)
    await running
  })
}, { name: 'purge', dependencies: ['db'] })
