import { PassThrough, Readable } from 'node:stream'
import { runUsersCommand } from '../../src/cli/users.js'
import type { Database } from '../../src/db/client.js'

/**
 * Runs a users-CLI command in-process against `database`, with `input` as its stdin. `env` is the
 * shell's environment the command reads (mail settings, keys); by default a development one with no
 * DATA_DIR on disk, never the test process's own.
 */
export async function runCli (database: Database, args: string[], input = '', env: Record<string, string> = { DATA_DIR: 'memory://' }) {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.on('data', (chunk) => { out += chunk })
  stderr.on('data', (chunk) => { err += chunk })
  const code = await runUsersCommand(args, database, { stdin: Readable.from([input]), stdout, stderr }, env)
  return { code, out, err }
}
