import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './server-process.js'

export interface PgBouncer {
  readonly port: number
  /** `databaseUrl` with its host and port replaced by the pooler's. */
  readonly urlFor: (databaseUrl: string) => string
  readonly output: () => string
  readonly stop: () => Promise<void>
}

export function pgbouncerBinary (): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' })
  const path = found.stdout.trim()
  return found.status === 0 && path !== '' ? path : undefined
}

async function isListening (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/**
 * Debian's PgBouncer in transaction mode in front of `upstream` (host:port of a Postgres with trust
 * auth), with a server pool of `poolSize` connections per database and user: smaller than the API's
 * own pool, so transactions really do move between server connections.
 */
export async function startPgBouncer (upstream: { host: string, port: number }, poolSize: number): Promise<PgBouncer> {
  const binary = pgbouncerBinary()
  if (binary === undefined) throw new Error('pgbouncer is not installed (Debian package pgbouncer)')
  const dir = mkdtempSync(join(tmpdir(), 'pgbouncer-'))
  const port = await freePort()
  writeFileSync(join(dir, 'userlist.txt'), '"postgres" ""\n')
  writeFileSync(join(dir, 'pgbouncer.ini'), [
    '[databases]',
    `* = host=${upstream.host} port=${upstream.port}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${join(dir, 'userlist.txt')}`,
    'pool_mode = transaction',
    `default_pool_size = ${poolSize}`,
    'max_client_conn = 200',
    // postgres.js sends these as startup parameters; PgBouncer refuses unknown ones unless told.
    // Behind a pooler they belong on the role instead (deploy/db/roles.sql does so).
    'ignore_startup_parameters = statement_timeout,idle_in_transaction_session_timeout,extra_float_digits,options',
    'admin_users = postgres',
    '',
  ].join('\n'))
  // PgBouncer refuses to run as root: as root (CI), run it as the postgres system user.
  chmodSync(dir, 0o755)
  const asRoot = process.getuid?.() === 0
  const command = asRoot ? 'runuser' : binary
  const args = asRoot ? ['-u', 'postgres', '--', binary, join(dir, 'pgbouncer.ini')] : [join(dir, 'pgbouncer.ini')]
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = once(child, 'exit')

  // It logs "listening on" once its socket is open; the port answering is what counts.
  const deadline = Date.now() + 10_000
  while (!await isListening(port)) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited: ${output}`)
    if (Date.now() > deadline) throw new Error(`pgbouncer did not listen within 10 s: ${output}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }

  return {
    port,
    urlFor (databaseUrl: string) {
      const url = new URL(databaseUrl)
      url.hostname = '127.0.0.1'
      url.port = String(port)
      return url.toString()
    },
    output: () => output,
    async stop () {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        await exited
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
