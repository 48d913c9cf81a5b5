import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { accessSync, constants, createWriteStream, type WriteStream } from 'node:fs'
import http, { type IncomingHttpHeaders } from 'node:http'
import https from 'node:https'
import { createServer } from 'node:net'
import { delimiter, join } from 'node:path'
import { createInterface } from 'node:readline'
import type { ConnectionOptions } from 'node:tls'

/** A program on PATH, or in the sbin folders a non-root PATH often lacks (Debian's nginx is in /usr/sbin). */
export function findProgram (name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin']
  for (const dir of dirs) {
    if (dir === '') continue
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

/** A port nobody listens on right now (the kernel picks it), so parallel runs do not collide. */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

export function randomHex (bytes: number): string {
  return randomBytes(bytes).toString('hex')
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs a program to completion; throws with its output when it fails. */
export function run (command: string, args: string[], options: { cwd?: string, env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): string {
  const result = spawnSync(command, args, {
    cwd: options.cwd, env: options.env ?? process.env, encoding: 'utf8', timeout: options.timeoutMs ?? 60_000,
  })
  if (result.error !== undefined) throw result.error
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}:\n${result.stdout}${result.stderr}`)
  }
  return result.stdout
}

export interface Answer {
  status: number
  headers: IncomingHttpHeaders
  /** Header names as sent, in order, to count repeats (Node joins duplicates in `headers`). */
  rawHeaders: string[]
  body: string
  tlsProtocol: string | undefined
  json<T = Record<string, unknown>>(): T
  count (header: string): number
}

export interface RequestOptions {
  port: number
  path: string
  method?: string
  headers?: Record<string, string>
  body?: string | Buffer
  /** HTTPS, trusting exactly this certificate (PEM). */
  ca?: string
  /** The client's own address: 127.0.0.2, 127.0.0.3... all reach the loopback but look like other clients. */
  localAddress?: string
  /** The name in the Host header (and SNI); the connection always goes to 127.0.0.1. */
  hostName?: string
  tls?: Pick<ConnectionOptions, 'minVersion' | 'maxVersion' | 'ciphers'>
  timeoutMs?: number
}

/** One request on a fresh connection, with no redirect following and no cookie handling. */
export function request (options: RequestOptions): Promise<Answer> {
  const hostName = options.hostName ?? 'localhost'
  const headers: Record<string, string> = { host: `${hostName}:${options.port}`, ...options.headers }
  if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body))
  const common = {
    host: '127.0.0.1',
    port: options.port,
    path: options.path,
    method: options.method ?? 'GET',
    headers,
    agent: false as const,
    ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
  }
  return new Promise((resolve, reject) => {
    const onResponse = (response: http.IncomingMessage) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('error', reject)
      response.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        const socket = response.socket as { getProtocol?: () => string | null } | null
        const rawHeaders = response.rawHeaders.filter((_value, index) => index % 2 === 0).map((name) => name.toLowerCase())
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          rawHeaders,
          body,
          tlsProtocol: socket?.getProtocol?.() ?? undefined,
          json: <T>() => JSON.parse(body) as T,
          count: (header: string) => rawHeaders.filter((name) => name === header.toLowerCase()).length,
        })
      })
    }
    const outgoing = options.ca === undefined
      ? http.request(common, onResponse)
      : https.request({ ...common, ca: options.ca, servername: hostName, ...options.tls }, onResponse)
    outgoing.setTimeout(options.timeoutMs ?? 15_000, () => outgoing.destroy(new Error(`timed out: ${common.method} ${options.path}`)))
    outgoing.on('error', reject)
    outgoing.end(options.body)
  })
}

/** The cookies a response sets, as a browser keeps them (a cleared cookie is gone). */
export function updateJar (jar: Record<string, string>, answer: Answer): Record<string, string> {
  const next = { ...jar }
  for (const line of [answer.headers['set-cookie'] ?? []].flat()) {
    const [pair = ''] = line.split(';')
    const at = pair.indexOf('=')
    const name = pair.slice(0, at).trim()
    const value = pair.slice(at + 1).trim()
    if (value === '' || /;\s*max-age=0/i.test(line)) delete next[name]
    else next[name] = value
  }
  return next
}

export function cookieHeader (jar: Record<string, string>): string {
  return Object.entries(jar).map(([name, value]) => `${name}=${value}`).join('; ')
}

export type LogLine = Record<string, unknown> & { msg?: string, req?: { url?: string, remoteAddress?: string, host?: string } }

/** A child process whose stdout/stderr go to a file, with JSON lines (pino) kept for assertions. */
export class ChildWithLogs {
  readonly lines: LogLine[] = []
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
  private readonly file: WriteStream

  constructor (readonly name: string, command: string, args: string[], options: { cwd: string, env: NodeJS.ProcessEnv, logFile: string }) {
    this.file = createWriteStream(options.logFile, { flags: 'a' })
    this.child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] })
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => {
      this.file.end()
      resolve(code)
    }))
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (stream === null) continue
      createInterface({ input: stream }).on('line', (line) => {
        this.file.write(line + '\n')
        if (!line.startsWith('{')) return
        try {
          this.lines.push(JSON.parse(line) as LogLine)
        } catch {}
      })
    }
  }

  get isRunning (): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Signals, then waits up to `ms` for the exit; SIGKILL after that. Resolves to the exit code. */
  async stop (signal: NodeJS.Signals = 'SIGTERM', ms = 15_000): Promise<number | null | 'killed'> {
    if (!this.isRunning) return this.child.exitCode
    this.child.kill(signal)
    const timer = sleep(ms).then(() => 'timeout' as const)
    const outcome = await Promise.race([this.exited, timer])
    if (outcome !== 'timeout') return outcome
    this.child.kill('SIGKILL')
    await this.exited
    return 'killed'
  }

  /** Request URLs this process logged (pino's "incoming request" lines) that contain `marker`. */
  urlsWith (marker: string): LogLine[] {
    return this.lines.filter((line) => line.msg === 'incoming request' && line.req?.url?.includes(marker) === true)
  }
}

/** Polls until `check` resolves true or the time is up; the last error explains a failure. */
export async function waitFor (what: string, check: () => Promise<boolean>, ms: number, isAlive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + ms
  let last = ''
  while (Date.now() < deadline) {
    if (!isAlive()) throw new Error(`${what}: the process exited`)
    try {
      if (await check()) return
    } catch (error) {
      last = (error as Error).message
    }
    await sleep(200)
  }
  throw new Error(`${what}: not within ${ms} ms ${last}`)
}

/**
 * A plain-HTTP POST whose body is sent in two parts: the request is surely in flight (headers read,
 * body awaited) until `finish` sends the rest.
 */
export function startSlowPost (port: number, path: string, body: string): { finish: () => void, answer: Promise<{ status: number, body: string }> } {
  let outgoing: http.ClientRequest | undefined
  const answer = new Promise<{ status: number, body: string }>((resolve, reject) => {
    outgoing = http.request({
      host: '127.0.0.1',
      port,
      path,
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
    }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
      response.on('error', reject)
    })
    outgoing.setTimeout(30_000, () => outgoing?.destroy(new Error(`timed out: POST ${path}`)))
    outgoing.on('error', reject)
  })
  const half = Math.floor(body.length / 2)
  outgoing!.write(body.slice(0, half))
  return { finish: () => outgoing!.end(body.slice(half)), answer }
}
