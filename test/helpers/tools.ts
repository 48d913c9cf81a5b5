import { createConnection } from 'node:net'
import { findProgram } from './deploy-stack.js'

/** The part of a tap test these helpers use: a failure to record. */
export interface FailContext {
  fail (message: string): void
}

/** Skip reasons for a missing program start with this, so `.ci/run` can list them. */
export const MISSING_TOOL = 'missing tool:'

const inCI = () => process.env.CI === 'true' || process.env.CI === '1'

/**
 * A `skip` value for a test that needs an external program (Chromium, Nginx, promtool, pgbouncer,
 * openssl, Redis…): `false` when it is there. When it is missing, a developer's run skips with the
 * reason and how to install it; in CI (CI=true) the missing program is a failure too, because CI
 * installs every one of them and a silent skip there would hide the whole feature from the count.
 */
export function toolSkip (t: FailContext, tool: string, present: boolean, install: string): string | false {
  if (present) return false
  const reason = `${MISSING_TOOL} ${tool} is not available (${install})`
  if (inCI()) t.fail(`${reason}: CI must have it`)
  return reason
}

/** `toolSkip` for a program looked up on PATH (and the sbin folders). */
export function programSkip (t: FailContext, program: string, install: string): string | false {
  return toolSkip(t, program, findProgram(program) !== undefined, install)
}

/** Whether Redis answers on its default local port (half a second at most: a closed port fails at once). */
async function redisAnswers (): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port: 6379 })
    socket.setTimeout(500)
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
    socket.once('timeout', () => { socket.destroy(); resolve(false) })
  })
}

/** `toolSkip` for the tests of counters shared through Redis on 127.0.0.1:6379. */
export async function redisSkip (t: FailContext): Promise<string | false> {
  return toolSkip(t, 'Redis on 127.0.0.1:6379', await redisAnswers(), 'apt-get install redis-server; .ci/run starts it')
}
