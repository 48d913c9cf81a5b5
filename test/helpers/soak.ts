import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import postgres from 'postgres'
import { HttpClient } from './http-client.js'
import { killServer, startServer, type ServerProcess } from './server-process.js'

export interface SoakOptions {
  /** Measured time, after the warm-up. */
  durationMs: number
  warmupMs: number
  /** Requests per second, all users together. */
  rate: number
  users: number
  /** A Postgres URL to use as it is; otherwise a fresh database is made on `serverUrl` and dropped after. */
  databaseUrl?: string | undefined
  serverUrl?: string
  log?: (line: string) => void
}

export interface SoakResult {
  requests: number
  errors: number
  errorSamples: string[]
  byKind: Record<string, number>
  heap: { start: number, end: number, growth: number }
  rss: { start: number, end: number }
  eventLoop: { p50: number, p99: number, max: number }
  latency: { p50: number, p99: number, max: number }
  achievedRate: number
}

interface ProbeSample { heapUsed: number, rss: number, gc: boolean, eventLoop: { p50: number, p99: number, max: number } }

function ask<T> (server: ServerProcess, message: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the probe did not answer')), 10_000)
    server.child.once('message', (answer) => { clearTimeout(timer); resolve(answer as T) })
    server.child.send(message)
  })
}

const percentile = (sorted: number[], p: number) => sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p / 100))]!

/**
 * The real server (src/server.ts) on real Postgres, driven on loopback at a steady rate by simulated
 * users, each going round a browser's day: sign in, who am I, list, create, change, read, refresh,
 * list, delete, sign out. Any answer other than the expected one is an error. Memory (after a full
 * GC) and event-loop delay come from inside the server, after the warm-up.
 */
export async function runSoak (options: SoakOptions): Promise<SoakResult> {
  const log = options.log ?? (() => {})
  let databaseUrl = options.databaseUrl
  let dropDatabase: (() => Promise<void>) | undefined
  if (databaseUrl === undefined) {
    const serverUrl = options.serverUrl ?? 'postgres://postgres@127.0.0.1:5432/postgres'
    const name = `soak_${randomUUID().replaceAll('-', '')}`
    const admin = postgres(serverUrl, { max: 1, onnotice: () => {} })
    await admin.unsafe(`create database ${name}`)
    await admin.end()
    const url = new URL(serverUrl)
    url.pathname = `/${name}`
    databaseUrl = url.toString()
    dropDatabase = async () => {
      const dropper = postgres(serverUrl, { max: 1, onnotice: () => {} })
      await dropper.unsafe(`drop database if exists ${name} with (force)`)
      await dropper.end()
    }
  }
  const dataDir = await mkdtemp(join(tmpdir(), 'cookie-auth-soak-'))
  let server: ServerProcess | undefined
  try {
    server = await startServer({
      DATABASE_URL: databaseUrl,
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      // One client address drives every user: the credential limits are for attackers, not for this.
      RATE_LIMIT_ALLOWLIST: '127.0.0.1',
    }, { nodeArgs: ['--expose-gc', '--import', './test/helpers/soak-probe.ts'], ipc: true })
    log(`server up at ${server.url} on ${databaseUrl.replace(/\/\/[^@]*@/, '//')}`)
    return await drive(server, options, log)
  } finally {
    if (server !== undefined) {
      server.child.kill('SIGTERM')
      await Promise.race([server.exited, sleep(15_000)])
      await killServer(server)
    }
    await rm(dataDir, { recursive: true, force: true })
    await dropDatabase?.()
  }
}

async function drive (server: ServerProcess, options: SoakOptions, log: (line: string) => void): Promise<SoakResult> {
  const password = 'violet-Kettle-42-orbit'
  const users = await Promise.all(Array.from({ length: options.users }, async (_, i) => {
    const client = new HttpClient(server.url)
    const username = `soak${i}_${randomUUID().slice(0, 8)}`
    const registered = await client.request('POST', '/api/auth/register', { username, password })
    if (registered.status !== 201) throw new Error(`register: ${registered.status} ${registered.text}`)
    return { client, username }
  }))

  // A steady rate: each request waits for its slot, whatever the answers' latency.
  const interval = 1000 / options.rate
  let nextSlot = performance.now()
  const slot = async () => {
    const at = nextSlot
    nextSlot = Math.max(nextSlot + interval, performance.now() - 5 * interval)
    const wait = at - performance.now()
    if (wait > 0) await sleep(wait)
  }

  let measuring = false
  // An object, not a boolean: the users' loops read it while the driver's timeline sets it.
  const run = { stopping: false }
  let requests = 0
  let errors = 0
  const errorSamples: string[] = []
  const byKind: Record<string, number> = {}
  const latencies: number[] = []

  async function step (kind: string, user: typeof users[number], method: string, path: string, expected: number, body?: unknown) {
    await slot()
    const started = performance.now()
    let status = 0
    let text = ''
    let json: unknown
    try {
      const response = await user.client.request(method, path, body)
      status = response.status
      text = response.text
      json = status === expected && text !== '' ? response.json() : undefined
    } catch (error) {
      text = String(error)
    }
    if (measuring) {
      requests += 1
      byKind[kind] = (byKind[kind] ?? 0) + 1
      latencies.push(performance.now() - started)
      if (status !== expected) {
        errors += 1
        if (errorSamples.length < 10) errorSamples.push(`${kind}: ${status} ${text.slice(0, 160)}`)
      }
    }
    if (status !== expected) throw new Error(`${kind}: ${status}`)
    return json
  }

  async function dayOf (user: typeof users[number]) {
    while (!run.stopping) {
      try {
        await step('sign-in', user, 'POST', '/api/auth/login', 200, { username: user.username, password })
        await step('read', user, 'GET', '/api/auth/me', 200)
        await step('read', user, 'GET', '/api/tasks?limit=20', 200)
        const created = await step('write', user, 'POST', '/api/tasks', 201, { title: `soak ${Date.now()}`, description: 'x'.repeat(200) }) as { task: { id: string } }
        await step('write', user, 'PATCH', `/api/tasks/${created.task.id}`, 200, { done: true })
        await step('read', user, 'GET', `/api/tasks/${created.task.id}`, 200)
        await step('refresh', user, 'POST', '/api/auth/refresh', 200)
        await step('read', user, 'GET', '/api/auth/sessions', 200)
        await step('write', user, 'DELETE', `/api/tasks/${created.task.id}`, 204)
        await step('sign-out', user, 'POST', '/api/auth/logout', 204)
      } catch {
        // Counted in step(); start the day over, signed out.
        user.client.cookies.clear()
      }
    }
  }

  const days = users.map((user) => dayOf(user))
  log(`warming up for ${Math.round(options.warmupMs / 1000)} s at ${options.rate} req/s with ${options.users} users`)
  await sleep(options.warmupMs)
  const start = await ask<ProbeSample>(server, 'sample')
  await ask(server, 'reset')
  measuring = true
  const measuredFrom = performance.now()
  log(`measuring for ${Math.round(options.durationMs / 1000)} s; heap after GC at start ${(start.heapUsed / 2 ** 20).toFixed(1)} MiB`)
  const progress = setInterval(() => log(`  ${Math.round((performance.now() - measuredFrom) / 1000)} s: ${requests} requests, ${errors} errors`), 60_000)
  await sleep(options.durationMs)
  clearInterval(progress)
  measuring = false
  const seconds = (performance.now() - measuredFrom) / 1000
  const end = await ask<ProbeSample>(server, 'sample')
  run.stopping = true
  await Promise.all(days)

  latencies.sort((a, b) => a - b)
  const round = (value: number) => Math.round(value * 10) / 10
  return {
    requests,
    errors,
    errorSamples,
    byKind,
    heap: { start: start.heapUsed, end: end.heapUsed, growth: (end.heapUsed - start.heapUsed) / start.heapUsed },
    rss: { start: start.rss, end: end.rss },
    eventLoop: end.eventLoop,
    latency: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), max: round(latencies.at(-1) ?? 0) },
    achievedRate: round(requests / seconds),
  }
}

export function formatSoak (result: SoakResult, options: SoakOptions): string {
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`
  return [
    `soak: ${Math.round(options.durationMs / 1000)} s measured after ${Math.round(options.warmupMs / 1000)} s warm-up, ${options.users} users, target ${options.rate} req/s (achieved ${result.achievedRate})`,
    `requests: ${result.requests} (${Object.entries(result.byKind).map(([kind, n]) => `${kind} ${n}`).join(', ')})`,
    `errors: ${result.errors}${result.errorSamples.length > 0 ? '\n  ' + result.errorSamples.join('\n  ') : ''}`,
    `heap after GC: ${mib(result.heap.start)} -> ${mib(result.heap.end)} (${(result.heap.growth * 100).toFixed(1)} %); rss ${mib(result.rss.start)} -> ${mib(result.rss.end)}`,
    `event-loop delay: p50 ${result.eventLoop.p50} ms, p99 ${result.eventLoop.p99} ms, max ${result.eventLoop.max} ms`,
    `latency: p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, max ${result.latency.max} ms`,
  ].join('\n')
}
