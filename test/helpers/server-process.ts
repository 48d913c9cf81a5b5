import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { projectRoot } from '../../src/paths.js'

export interface ServerProcess {
  readonly child: ChildProcess
  readonly port: number
  readonly url: string
  /** Everything the process wrote, stdout and stderr. */
  readonly output: () => string
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  readonly isRunning: () => boolean
}

/** A port nobody listens on right now (the kernel's pick). */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

/**
 * The real server (`src/server.ts` through tsx, as `npm run dev` runs it, without the watcher) in a
 * process of its own, on a free port, no frontend, with `env` on top. Resolves once it listens.
 */
export interface StartOptions {
  startTimeoutMs?: number
  /** Extra flags for node, after tsx's loader and before the entry point (e.g. `--expose-gc`, another `--import`). */
  nodeArgs?: string[]
  /** Open an IPC channel (for a probe loaded with `--import`). */
  ipc?: boolean
}

export async function startServer (env: Record<string, string>, { startTimeoutMs = 90_000, nodeArgs = [], ipc = false }: StartOptions = {}): Promise<ServerProcess> {
  const port = await freePort()
  const childEnv: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    // The test runner's own loaders and settings are not the server's business.
    if (value !== undefined && !name.startsWith('TAP') && name !== 'NODE_OPTIONS') childEnv[name] = value
  }
  Object.assign(childEnv, {
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    FRONTEND_PORT: '0',
    LOG_LEVEL: 'info',
    DOCS: 'false',
    DATABASE_URL: '',
    ...env,
  })
  const child = spawn(process.execPath, ['--import', 'tsx', ...nodeArgs, 'src/server.ts'], {
    cwd: projectRoot(), env: childEnv, stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  let running = true
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => { running = false; resolve({ code, signal }) })
  })
  let settle: () => void = () => {}
  const listeningOrGone = new Promise<void>((resolve) => { settle = resolve })
  const listening = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Server listening at')) resolve()
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    // At LOG_LEVEL=warn the line above never comes: ask the server itself.
    const poll = setInterval(() => {
      fetch(`http://127.0.0.1:${port}/api/health`).then((response) => { if (response.ok) resolve() }, () => {})
    }, 250)
    listeningOrGone.finally(() => clearInterval(poll)).catch(() => {})
    exited.then(({ code, signal }) => reject(new Error(`the server exited (${code ?? signal}) before listening:\n${output}`))).catch(() => {})
    setTimeout(() => reject(new Error(`the server did not listen within ${startTimeoutMs} ms:\n${output}`)), startTimeoutMs).unref()
  })
  try {
    await listening
  } catch (error) {
    settle()
    child.kill('SIGKILL')
    throw error
  }
  settle()
  return { child, port, url: `http://127.0.0.1:${port}`, output: () => output, exited, isRunning: () => running }
}

/** Stops a server a test left running, so no process outlives its test. */
export async function killServer (server: ServerProcess): Promise<void> {
  if (!server.isRunning()) return
  server.child.kill('SIGKILL')
  await server.exited
}

/** How many times `pattern` occurs in what the server wrote so far. */
export function countInOutput (server: ServerProcess, pattern: RegExp): number {
  return [...server.output().matchAll(new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`))].length
}

/**
 * Resolves once the server has written `pattern` at least `count` times (its log lines are the events
 * a test waits for, never a sleep); rejects after `timeoutMs` with what it wrote.
 */
export async function waitForOutput (server: ServerProcess, pattern: RegExp, count = 1, timeoutMs = 30_000): Promise<void> {
  if (countInOutput(server, pattern) >= count) return
  await new Promise<void>((resolve, reject) => {
    const check = () => {
      if (countInOutput(server, pattern) < count) return
      stop()
      resolve()
    }
    const timer = setTimeout(() => { stop(); reject(new Error(`the server did not write ${pattern} ${count} times within ${timeoutMs} ms:\n${server.output()}`)) }, timeoutMs)
    // Listeners added after startServer's own: the output it collects already holds this chunk.
    const stop = () => {
      clearTimeout(timer)
      server.child.stdout?.off('data', check)
      server.child.stderr?.off('data', check)
    }
    server.child.stdout?.on('data', check)
    server.child.stderr?.on('data', check)
  })
}

/** Resolves once `condition` holds, checked every `everyMs`; rejects after `timeoutMs`. For states with no event to wait on. */
export async function waitUntil (condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}
