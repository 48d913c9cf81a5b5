// `npm run bench`: the built API against its floor (test/bench/floor.ts) and against better-auth on
// Fastify (test/bench/better-auth-peer.ts), same database server, same load, scenario by scenario.
//
//   node --import tsx test/bench/run.ts [--duration 10] [--warmup 3] [--smoke] [--source] [--out file.json]
//     [--scenarios tasks-list,me] [--observability | --pgbouncer]
//
// --observability: instead of the usual run, what metrics and tracing cost. The API is started three
// ways (off; METRICS_TOKEN set and scraped every 5 s; OTEL_EXPORTER_OTLP_ENDPOINT set, exporting to a
// sink in this process), one at a time, and each serves tasks-list and me, in the order
// off, metrics, tracing, tracing, metrics, off so that drift in the machine's load cancels out.
// --pgbouncer: the same for the database path: directly with named prepared statements (the
// default), directly with DATABASE_PREPARE=false, and through Debian's PgBouncer in transaction mode
// (a server pool of 5, half the API's), with the server connections Postgres had open for each.
//
// Env: DATABASE_URL (an admin connection to the Postgres server; a fresh `bench_<random>` database is
// created there and dropped at the end), BENCH_DURATION, BENCH_WARMUP (seconds), BENCH_API_ENTRY (a
// server.js other than dist/src/server.js, for A/B runs), BENCH_LOG_LEVEL (the API's LOG_LEVEL, warn by
// default; `info` shows what request logging costs), BENCH_API_ENV (extra `NAME=value,NAME=value` for the
// API process, for A/B runs), BENCH_API_NODE_ARGS (flags for the API's node, e.g.
// `--cpu-prof --cpu-prof-dir=bench-results/profiles`; read a profile with test/bench/profile-summary.ts). Loads go to 127.0.0.1 only, each bounded in
// time; every child process is killed at the end, failure or not.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createServer } from 'node:net'
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { hash, verify } from '@node-rs/argon2'
import autocannon from 'autocannon'
import postgres from 'postgres'
import { ARGON2_OPTIONS } from '../../src/passwords.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
// The frontend origin the benchmark's clients claim: production accepts only https origins.
const ORIGIN = 'https://app.bench.invalid'
const PASSWORD = 'bench-Violet-kettle-42'

// The targets, as ratios within one run (absolute numbers move with the machine).
export const TARGETS = {
  tasksListRps: 0.85, // × floor req/s
  tasksCreateRps: 0.80, // × floor req/s
  meRps: 0.90, // × floor req/s
  overBetterAuth: 4, // × better-auth's req/s, in each of those three scenarios
  p99OfFloor: 1.5, // × floor p99 (at most), in each of those three scenarios
  rssOverFloorMiB: 25, // peak RSS at most the floor's + this, in every scenario
  loginOfFloor: 0.95, // × the floor's login req/s (the same argon2 work)
  healthDuringLoginP99Ms: 10,
  coldStartMs: 1500,
} as const

interface Options {
  duration: number
  warmup: number
  smoke: boolean
  source: boolean
  out: string | undefined
  scenarios: readonly Scenario[]
  observability: boolean
  pgbouncer: boolean
}

function readOptions (): Options {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      source: { type: 'boolean', default: false },
      out: { type: 'string' },
      scenarios: { type: 'string' },
      observability: { type: 'boolean', default: false },
      pgbouncer: { type: 'boolean', default: false },
    },
  })
  const scenarios = values.scenarios === undefined ? SCENARIOS : values.scenarios.split(',').map((name) => name.trim())
  const unknown = scenarios.filter((name) => !SCENARIOS.includes(name as Scenario))
  if (unknown.length > 0) throw new Error(`--scenarios: unknown ${unknown.join(', ')} (known: ${SCENARIOS.join(', ')})`)
  const smoke = values.smoke === true
  const seconds = (raw: string | undefined, fallback: number, name: string) => {
    if (raw === undefined || raw === '') return fallback
    const value = Number(raw)
    if (!Number.isFinite(value) || value <= 0 || value > 600) throw new Error(`${name} must be a number of seconds in (0, 600], got "${raw}"`)
    return value
  }
  return {
    smoke,
    duration: seconds(values.duration ?? process.env.BENCH_DURATION, smoke ? 2 : 10, '--duration'),
    warmup: seconds(values.warmup ?? process.env.BENCH_WARMUP, smoke ? 0.5 : 3, '--warmup'),
    // The API from src/ through tsx, without a build (the CI smoke test): slower to start.
    source: values.source === true,
    out: values.out,
    scenarios: scenarios as Scenario[],
    observability: values.observability === true,
    pgbouncer: values.pgbouncer === true,
  }
}

// ---------------------------------------------------------------------------------------------
// Child processes

const children = new Set<ChildProcess>()

async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

function start (name: string, args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  // Warnings and errors only (LOG_LEVEL=warn): shown, prefixed, so a failing run explains itself.
  const relay = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line.trim() !== '') process.stderr.write(`[${name}] ${line}\n`)
  }
  child.stdout?.on('data', relay)
  child.stderr?.on('data', relay)
  return child
}

async function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

async function stopAll () {
  await Promise.all([...children].map(stop))
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `url` until it answers 200; returns the milliseconds since `since`. */
async function waitFor200 (url: string, child: ChildProcess, since: number, timeoutMs = 30_000): Promise<number> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: the server exited with ${child.exitCode}`)
    try {
      const response = await fetch(url)
      if (response.status === 200) return performance.now() - since
    } catch {}
    if (performance.now() - since > timeoutMs) throw new Error(`${url}: no 200 within ${timeoutMs} ms`)
    await sleep(5)
  }
}

/** Resident memory of a process (KiB), from /proc: VmRSS now and VmHWM, its peak since it started. */
function memoryOf (pid: number | undefined): { rss: number, hwm: number } {
  if (pid === undefined) return { rss: 0, hwm: 0 }
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0)
    return { rss: field('VmRSS'), hwm: field('VmHWM') }
  } catch {
    return { rss: 0, hwm: 0 }
  }
}

// ---------------------------------------------------------------------------------------------
// Servers

type ServerName = 'api' | 'floor' | 'better-auth'
interface Server { name: ServerName, base: string, child: ChildProcess }

function apiEnv (databaseUrl: string, port: number, jwtSecret: string): Record<string, string> {
  return {
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    HOST: '127.0.0.1',
    JWT_SECRET: jwtSecret,
    ENCRYPTION_KEY: jwtSecret.split('').reverse().join(''),
    FRONTEND_PORT: '0',
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
    DOCS: 'false',
    // Production refuses the localhost defaults; the bench's clients send this Origin.
    CORS_ORIGINS: ORIGIN,
    PUBLIC_ORIGIN: `https://127.0.0.1:${port}`,
    MIGRATE_ON_START: 'true',
    // The login storm comes from one address: without this it meets the credential limits at once.
    RATE_LIMIT_ALLOWLIST: '127.0.0.1,::1,::ffff:127.0.0.1',
    // Longer than any run, so the cookie taken at the start stays valid throughout.
    ACCESS_TOKEN_TTL: '3600',
    ...(process.env.UV_THREADPOOL_SIZE === undefined ? {} : { UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE }),
    ...Object.fromEntries((process.env.BENCH_API_ENV ?? '').split(',').filter((pair) => pair.includes('='))
      .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)])),
  }
}

function apiArgs (source: boolean): string[] {
  const nodeArgs = (process.env.BENCH_API_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '')
  if (source) return [...nodeArgs, '--import', 'tsx', join(root, 'src', 'server.ts')]
  const entry = process.env.BENCH_API_ENTRY ?? join(root, 'dist', 'src', 'server.js')
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` first (npm run bench does), or pass --source`)
  return [...nodeArgs, entry]
}

/** Spawns the API and times it to /api/health/ready answering 200. */
async function startApi (databaseUrl: string, jwtSecret: string, source: boolean, extraEnv: Record<string, string> = {}): Promise<Server & { coldStartMs: number }> {
  const port = await freePort()
  const since = performance.now()
  const child = start('api', apiArgs(source), { ...apiEnv(databaseUrl, port, jwtSecret), ...extraEnv })
  const base = `http://127.0.0.1:${port}`
  const coldStartMs = await waitFor200(`${base}/api/health/ready`, child, since)
  return { name: 'api', base, child, coldStartMs }
}

async function startFloor (databaseUrl: string, userId: string, sessionId: string): Promise<Server> {
  const port = await freePort()
  const child = start('floor', ['--import', 'tsx', join(root, 'test', 'bench', 'floor.ts')], {
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    FLOOR_USER_ID: userId,
    FLOOR_SESSION_ID: sessionId,
    ...(process.env.UV_THREADPOOL_SIZE === undefined ? {} : { UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE }),
  })
  const base = `http://127.0.0.1:${port}`
  await waitFor200(`${base}/api/health`, child, performance.now())
  return { name: 'floor', base, child }
}

async function startBetterAuth (databaseUrl: string): Promise<Server> {
  const port = await freePort()
  const child = start('better-auth', ['--import', 'tsx', join(root, 'test', 'bench', 'better-auth-peer.ts')], {
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    BETTER_AUTH_SECRET: randomBytes(32).toString('hex'),
    BENCH_ORIGIN: ORIGIN,
    NODE_ENV: 'production',
    ...(process.env.UV_THREADPOOL_SIZE === undefined ? {} : { UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE }),
  })
  const base = `http://127.0.0.1:${port}`
  await waitFor200(`${base}/api/health`, child, performance.now(), 60_000)
  return { name: 'better-auth', base, child }
}

// ---------------------------------------------------------------------------------------------
// Seeding, through the API's own routes

interface Seed { userId: string, sessionId: string, username: string, cookie: string }

/** better-auth's user: signed up and in through its own routes, with the same 20 tasks. */
async function seedBetterAuth (base: string): Promise<Seed> {
  const email = `bench_${randomBytes(4).toString('hex')}@example.com`
  const json = { 'content-type': 'application/json', origin: ORIGIN }
  const signUp = await fetch(`${base}/api/auth/sign-up/email`, { method: 'POST', headers: json, body: JSON.stringify({ email, password: PASSWORD, name: 'bench' }) })
  if (signUp.status !== 200) throw new Error(`better-auth sign-up: ${signUp.status} ${await signUp.text()}`)
  const signIn = await fetch(`${base}/api/auth/sign-in/email`, { method: 'POST', headers: json, body: JSON.stringify({ email, password: PASSWORD }) })
  if (signIn.status !== 200) throw new Error(`better-auth sign-in: ${signIn.status} ${await signIn.text()}`)
  const line = signIn.headers.getSetCookie().find((cookie) => cookie.startsWith('better-auth.session_token='))
  if (line === undefined) throw new Error('better-auth set no session cookie')
  const cookie = line.slice(0, line.indexOf(';'))
  const { user } = (await signIn.json()) as { user: { id: string } }
  for (let i = 1; i <= 20; i++) {
    const created = await fetch(`${base}/api/tasks`, {
      method: 'POST', headers: { ...json, cookie }, body: JSON.stringify({ title: `seed task ${i}`, description: 'a task the benchmark lists' }),
    })
    if (created.status !== 201) throw new Error(`better-auth seed task: ${created.status} ${await created.text()}`)
  }
  return { userId: user.id, sessionId: '', username: email, cookie }
}

async function seed (api: string): Promise<Seed> {
  const username = `bench_${randomBytes(4).toString('hex')}`
  const json = { 'content-type': 'application/json', origin: ORIGIN }
  const registered = await fetch(`${api}/api/auth/register`, { method: 'POST', headers: json, body: JSON.stringify({ username, password: PASSWORD }) })
  if (registered.status !== 201) throw new Error(`register: ${registered.status} ${await registered.text()}`)
  const userId = ((await registered.json()) as { user: { id: string } }).user.id
  const login = await fetch(`${api}/api/auth/login`, { method: 'POST', headers: json, body: JSON.stringify({ username, password: PASSWORD }) })
  if (login.status !== 200) throw new Error(`login: ${login.status} ${await login.text()}`)
  const access = login.headers.getSetCookie().find((line) => line.startsWith('__Host-access_token='))
  if (access === undefined) throw new Error('login set no __Host-access_token cookie')
  const token = access.slice(0, access.indexOf(';')).split('=')[1]!
  const { sid } = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sid: string }
  const cookie = `__Host-access_token=${token}`
  for (let i = 1; i <= 20; i++) {
    const created = await fetch(`${api}/api/tasks`, {
      method: 'POST', headers: { ...json, cookie }, body: JSON.stringify({ title: `seed task ${i}`, description: 'a task the benchmark lists' }),
    })
    if (created.status !== 201) throw new Error(`seed task: ${created.status} ${await created.text()}`)
  }
  return { userId, sessionId: sid, username, cookie }
}

// ---------------------------------------------------------------------------------------------
// Load

type Scenario = 'tasks-list' | 'tasks-create' | 'me' | 'login' | 'health-during-login'
const SCENARIOS: readonly Scenario[] = ['tasks-list', 'tasks-create', 'me', 'login', 'health-during-login']

function requestOf (scenario: Scenario, server: Server, s: Seed): autocannon.Options {
  const json = { 'content-type': 'application/json', origin: ORIGIN }
  const base = server.base
  // better-auth's own names for the same two auth operations.
  if (server.name === 'better-auth' && scenario === 'me') return { url: `${base}/api/auth/get-session`, connections: 50, headers: { cookie: s.cookie } }
  if (server.name === 'better-auth' && scenario === 'login') {
    return {
      url: `${base}/api/auth/sign-in/email`,
      connections: 8,
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email: s.username, password: PASSWORD }),
    }
  }
  switch (scenario) {
    case 'tasks-list': return { url: `${base}/api/tasks`, connections: 50, headers: { cookie: s.cookie } }
    case 'tasks-create': return {
      url: `${base}/api/tasks`,
      connections: 50,
      method: 'POST',
      headers: { ...json, cookie: s.cookie },
      body: JSON.stringify({ title: 'bench task', description: 'created under load' }),
    }
    case 'me': return { url: `${base}/api/auth/me`, connections: 50, headers: { cookie: s.cookie } }
    case 'login': return {
      url: `${base}/api/auth/login`,
      connections: 8,
      method: 'POST',
      headers: json,
      body: JSON.stringify({ username: s.username, password: PASSWORD }),
    }
    case 'health-during-login': return { url: `${base}/api/health`, connections: 1 }
  }
}

async function fire (options: autocannon.Options, seconds: number): Promise<autocannon.Result> {
  // pipelining 1, a 10 s timeout per request; autocannon stops by itself after `duration`.
  return autocannon({ ...options, duration: seconds, timeout: 10, pipelining: 1 })
}

export interface Row {
  scenario: Scenario
  server: ServerName
  rps: number
  p50: number
  p99: number
  max: number
  non2xx: number
  errors: number
  /** Highest VmRSS sampled during the scenario (MiB). */
  peakRssMiB: number
}

async function measure (scenario: Scenario, server: Server, s: Seed, opts: Options): Promise<Row> {
  const load = requestOf(scenario, server, s)
  // The storm that runs beside health-during-login: the login scenario itself.
  const storm = scenario === 'health-during-login' ? requestOf('login', server, s) : undefined
  const warm = [fire(load, opts.warmup)]
  if (storm !== undefined) warm.push(fire(storm, opts.warmup))
  await Promise.all(warm)

  let peakKiB = memoryOf(server.child.pid).rss
  const sampler = setInterval(() => { peakKiB = Math.max(peakKiB, memoryOf(server.child.pid).rss) }, 100)
  try {
    // The storm starts first and outlasts the measured load, so every health probe meets it.
    const stormRun = storm === undefined ? undefined : fire(storm, opts.duration + 0.5)
    if (stormRun !== undefined) await sleep(250)
    const result = await fire(load, opts.duration)
    const stormResult = await stormRun
    // A server that died mid-run shows up as a wall of connection errors: say so plainly instead.
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      throw new Error(`the ${server.name} exited (code ${server.child.exitCode}, signal ${server.child.signalCode}) during ${scenario}: see its [${server.name}] lines above`)
    }
    peakKiB = Math.max(peakKiB, memoryOf(server.child.pid).rss)
    return {
      scenario,
      server: server.name,
      rps: result.requests.average,
      p50: result.latency.p50,
      p99: result.latency.p99,
      max: result.latency.max,
      // The storm's failures count too: health-during-login is only meaningful if the logins succeed.
      non2xx: result.non2xx + (stormResult?.non2xx ?? 0),
      errors: result.errors + result.timeouts + (stormResult?.errors ?? 0) + (stormResult?.timeouts ?? 0),
      peakRssMiB: peakKiB / 1024,
    }
  } finally {
    clearInterval(sampler)
  }
}

// ---------------------------------------------------------------------------------------------
// argon2's ceiling on this machine

export interface Argon2Ceiling {
  /** Sequential operations per second: one thread of the pool busy at a time. */
  hashesPerSecondOneThread: number
  verificationsPerSecondOneThread: number
  threadpoolSize: number
  cores: number
  /** min(threadpool, cores): CPU-bound hashing cannot use more threads than there are cores. */
  usableThreads: number
  /** verifications/s on one thread × usableThreads: the most logins per second this machine allows. */
  ceiling: number
  /** verifications/s on one thread × the pool size, which the cores cannot actually deliver here. */
  ceilingByThreadpool: number
  /** Verifications/s measured with usableThreads running at once (memory bandwidth shows here). */
  measuredParallel: number
}

async function argon2Ceiling (seconds: number): Promise<Argon2Ceiling> {
  const stored = await hash(PASSWORD, ARGON2_OPTIONS)
  const rate = async (work: () => Promise<unknown>, parallel: number) => {
    const until = performance.now() + seconds * 1000
    let done = 0
    const since = performance.now()
    await Promise.all(Array.from({ length: parallel }, async () => {
      while (performance.now() < until) {
        await work()
        done++
      }
    }))
    return done / ((performance.now() - since) / 1000)
  }
  const threadpoolSize = Number(process.env.UV_THREADPOOL_SIZE ?? 4)
  const cores = availableParallelism()
  const usableThreads = Math.min(threadpoolSize, cores)
  const hashesPerSecondOneThread = await rate(() => hash(PASSWORD, ARGON2_OPTIONS), 1)
  const verificationsPerSecondOneThread = await rate(() => verify(stored, PASSWORD), 1)
  const measuredParallel = await rate(() => verify(stored, PASSWORD), usableThreads)
  return {
    hashesPerSecondOneThread,
    verificationsPerSecondOneThread,
    threadpoolSize,
    cores,
    usableThreads,
    ceiling: verificationsPerSecondOneThread * usableThreads,
    ceilingByThreadpool: verificationsPerSecondOneThread * threadpoolSize,
    measuredParallel,
  }
}

// ---------------------------------------------------------------------------------------------
// Report

export interface Target { name: string, goal: string, measured: string, met: boolean }

function evaluate (rows: Row[], coldStartMs: number): Target[] {
  // A partial run (--scenarios) evaluates only the targets it has rows for.
  const row = (scenario: Scenario, server: ServerName) => rows.find((r) => r.scenario === scenario && r.server === server)
  const f = (n: number, digits = 2) => n.toFixed(digits)
  const targets: Target[] = []
  const hot: Array<[Scenario, number]> = [['tasks-list', TARGETS.tasksListRps], ['tasks-create', TARGETS.tasksCreateRps], ['me', TARGETS.meRps]]
  for (const [scenario, goal] of hot) {
    const api = row(scenario, 'api')
    const floor = row(scenario, 'floor')
    const peer = row(scenario, 'better-auth')
    if (api === undefined || floor === undefined) continue
    const ofFloor = api.rps / floor.rps
    targets.push({ name: `${scenario} req/s`, goal: `≥ ${goal} × floor`, measured: `${f(ofFloor)} ×`, met: ofFloor >= goal })
    const p99 = api.p99 / Math.max(floor.p99, 1)
    targets.push({ name: `${scenario} p99`, goal: `≤ ${TARGETS.p99OfFloor} × floor`, measured: `${f(p99)} ×`, met: p99 <= TARGETS.p99OfFloor })
    if (peer !== undefined) {
      const ofPeer = api.rps / peer.rps
      targets.push({ name: `${scenario} vs better-auth`, goal: `≥ ${TARGETS.overBetterAuth} × better-auth`, measured: `${f(ofPeer)} ×`, met: ofPeer >= TARGETS.overBetterAuth })
    }
  }
  const login = row('login', 'api')
  const floorLogin = row('login', 'floor')
  if (login !== undefined && floorLogin !== undefined) {
    const ratio = login.rps / floorLogin.rps
    targets.push({ name: 'login req/s', goal: `≥ ${TARGETS.loginOfFloor} × floor`, measured: `${f(ratio)} ×`, met: ratio >= TARGETS.loginOfFloor })
  }
  const health = row('health-during-login', 'api')
  if (health !== undefined) {
    targets.push({ name: 'health-during-login p99', goal: `≤ ${TARGETS.healthDuringLoginP99Ms} ms`, measured: `${health.p99} ms`, met: health.p99 <= TARGETS.healthDuringLoginP99Ms })
  }
  const rssGaps = rows.filter((r) => r.server === 'api').map((api) => {
    const floor = row(api.scenario, 'floor')
    return floor === undefined ? 0 : api.peakRssMiB - floor.peakRssMiB
  })
  if (rssGaps.length > 0) {
    const worst = Math.max(...rssGaps)
    targets.push({ name: 'peak RSS over the floor', goal: `≤ ${TARGETS.rssOverFloorMiB} MiB in every scenario`, measured: `${f(worst, 1)} MiB (worst)`, met: worst <= TARGETS.rssOverFloorMiB })
  }
  targets.push({ name: 'cold start to ready', goal: `≤ ${TARGETS.coldStartMs} ms`, measured: `${f(coldStartMs, 0)} ms`, met: coldStartMs <= TARGETS.coldStartMs })
  return targets
}

function table (rows: Row[]): string {
  const header = ['scenario', 'server', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'non-2xx', 'errors', 'peak RSS MiB', 'ours / floor', 'ours / better-auth']
  const ratio = (api: Row, other: Row | undefined) => other === undefined || other.rps === 0
    ? ''
    : `${(api.rps / other.rps).toFixed(2)} × req/s, ${other.p99 > 0 ? (api.p99 / other.p99).toFixed(2) : '–'} × p99`
  const lines = rows.map((r) => {
    const of = (server: ServerName) => rows.find((other) => other.scenario === r.scenario && other.server === server)
    return [r.scenario, r.server, r.rps.toFixed(0), String(r.p50), String(r.p99), String(r.max), String(r.non2xx), String(r.errors), r.peakRssMiB.toFixed(1),
      r.server === 'api' ? ratio(r, of('floor')) : '', r.server === 'api' ? ratio(r, of('better-auth')) : '']
  })
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)))
  const format = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`
  return [format(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(format)].join('\n')
}

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// One API, started several ways: what a setting costs

const VARIANT_SCENARIOS = ['tasks-list', 'me'] as const satisfies readonly Scenario[]
const METRICS_TOKEN = randomBytes(24).toString('hex')

export interface VariantRow {
  variant: string
  scenario: Scenario
  rps: number
  p99: number
  non2xx: number
  errors: number
  /** Server connections Postgres had open for the bench database right after the scenario. */
  serverConnections: number
}

interface Variant {
  name: string
  /** The API's extra environment, and where it finds its database. */
  env: Record<string, string>
  /** Runs beside the load while this variant serves; the function it returns checks and stops it. */
  during?: (api: Server) => () => Promise<void>
}

/** An OTLP/HTTP collector that accepts and drops everything: the exporter's work, without a backend's. */
async function startSink (): Promise<{ url: string, received: () => number, close: () => Promise<void> }> {
  let received = 0
  const server = createHttpServer((request, response) => {
    request.resume()
    request.on('end', () => { received++; response.writeHead(200, { 'content-type': 'application/json' }).end('{}') })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return { url: `http://127.0.0.1:${port}`, received: () => received, close: () => new Promise((resolve) => server.close(() => resolve())) }
}

/** The bench database's server connections, counted and closed through an admin connection. */
interface ServerConnections {
  count (): Promise<number>
  /** Between variants, so that each is counted from none (PgBouncer keeps idle ones for minutes). */
  closeAll (): Promise<void>
}

/** A run where anything answered other than 2xx measured refusals, not the service: report nothing. */
function refuseFailedRuns<Row extends { scenario: Scenario, non2xx: number, errors: number }> (rows: Row[], server: (row: Row) => string): void {
  const failed = rows.filter((r) => r.non2xx > 0 || r.errors > 0)
  if (failed.length > 0) {
    throw new Error(`refusing to report this run: non-2xx answers or errors in ${failed.map((r) => `${r.scenario}/${server(r)} (${r.non2xx} non-2xx, ${r.errors} errors)`).join(', ')}`)
  }
}

function describeLoad (atStart: number[], atEnd: number[]): string {
  const format = (load: number[]) => load.map((n) => n.toFixed(2)).join(', ')
  return `machine load (1, 5, 15 min): ${format(atStart)} at the start, ${format(atEnd)} at the end, on ${cpus().length} cores`
}

/**
 * Each variant's API serves tasks-list and me, one API at a time, in the order a b c c b a so that
 * drift in the machine's load cancels out. The database is migrated and seeded once, directly.
 */
async function compareVariants (
  databaseUrl: string, jwtSecret: string, opts: Options, variants: Variant[], serverConnections: ServerConnections
): Promise<VariantRow[]> {
  const first = await startApi(databaseUrl, jwtSecret, opts.source)
  const seeded = await seed(first.base)
  await stop(first.child)
  const rows: VariantRow[] = []
  for (const variant of [...variants, ...[...variants].reverse()]) {
    // variant.env may name another DATABASE_URL (the pooler's): it overrides this one.
    const api = await startApi(databaseUrl, jwtSecret, opts.source, variant.env)
    const finish = variant.during?.(api)
    try {
      for (const scenario of VARIANT_SCENARIOS) {
        const row = await measure(scenario, api, seeded, opts)
        const connections = await serverConnections.count()
        rows.push({ variant: variant.name, scenario, rps: row.rps, p99: row.p99, non2xx: row.non2xx, errors: row.errors, serverConnections: connections })
        console.log(`  ${scenario} ${variant.name}: ${row.rps.toFixed(0)} req/s, p99 ${row.p99} ms, non-2xx ${row.non2xx}, errors ${row.errors}, ${connections} server connections`)
      }
    } finally {
      await finish?.()
      await stop(api.child)
      await serverConnections.closeAll()
    }
  }
  refuseFailedRuns(rows, (row) => row.variant)
  return rows
}

/** Off, metrics scraped every 5 s, tracing exported to a sink in this process. */
async function observabilityVariants (): Promise<{ variants: Variant[], close: () => Promise<void> }> {
  const sink = await startSink()
  const scraped = (api: Server) => fetch(`${api.base}/api/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
  const variants: Variant[] = [
    { name: 'off', env: {} },
    {
      name: 'metrics',
      env: { METRICS_TOKEN },
      during: (api) => {
        // Prometheus's pace would be 15 s; every 5 s leaves no run without a scrape.
        const scraper = setInterval(() => { scraped(api).then((r) => r.text()).catch(() => {}) }, 5000)
        return async () => {
          clearInterval(scraper)
          const scrape = await scraped(api)
          if (scrape.status !== 200) throw new Error(`metrics variant: /api/metrics answered ${scrape.status}`)
        }
      },
    },
    {
      name: 'tracing',
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url },
      during: () => async () => {
        if (sink.received() === 0) throw new Error('tracing variant: the OTLP sink received nothing')
      },
    },
  ]
  return { variants, close: sink.close }
}

/**
 * Directly with named prepared statements (the default), directly with unnamed statements
 * (DATABASE_PREPARE=false), and through PgBouncer in transaction mode with half the API's pool.
 */
async function pgbouncerVariants (databaseUrl: string): Promise<{ variants: Variant[], close: () => Promise<void> }> {
  const { startPgBouncer } = await import('../helpers/pgbouncer.js')
  const url = new URL(databaseUrl)
  const bouncer = await startPgBouncer({ host: url.hostname, port: Number(url.port || 5432) }, PGBOUNCER_POOL)
  const variants: Variant[] = [
    { name: 'direct, prepared', env: {} },
    { name: 'direct, unnamed', env: { DATABASE_PREPARE: 'false' } },
    { name: `pgbouncer (pool ${PGBOUNCER_POOL}), unnamed`, env: { DATABASE_PREPARE: 'false', MIGRATE_ON_START: 'false', DATABASE_URL: bouncer.urlFor(databaseUrl) } },
  ]
  return { variants, close: bouncer.stop }
}
const PGBOUNCER_POOL = 5

function variantTable (rows: VariantRow[]): string {
  const names = [...new Set(rows.map((r) => r.variant))]
  const mean = (variant: string, scenario: Scenario, field: 'rps' | 'p99') => {
    const of = rows.filter((r) => r.variant === variant && r.scenario === scenario)
    return of.reduce((sum, r) => sum + r[field], 0) / of.length
  }
  const most = (variant: string) => Math.max(...rows.filter((r) => r.variant === variant).map((r) => r.serverConnections))
  const lines = [
    `| scenario | variant | req/s (mean of 2) | p99 ms (mean of 2) | req/s vs ${names[0]} | p99 vs ${names[0]} | server connections (most) |`,
    '|---|---|---|---|---|---|---|',
  ]
  for (const scenario of VARIANT_SCENARIOS) {
    for (const variant of names) {
      const rps = mean(variant, scenario, 'rps')
      const p99 = mean(variant, scenario, 'p99')
      lines.push(`| ${scenario} | ${variant} | ${rps.toFixed(0)} | ${p99.toFixed(1)} | ${(rps / mean(names[0]!, scenario, 'rps')).toFixed(2)} × | ${(p99 / mean(names[0]!, scenario, 'p99')).toFixed(2)} × | ${most(variant)} |`)
    }
  }
  return lines.join('\n')
}

async function main () {
  const opts = readOptions()
  const adminUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'
  const dbName = `bench_${randomBytes(6).toString('hex')}`
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  const databaseUrl = (() => { const url = new URL(adminUrl); url.pathname = `/${dbName}`; return url.toString() })()
  const jwtSecret = randomBytes(48).toString('base64url')
  const startedAt = new Date()
  const loadAtStart = loadavg()
  let created = false
  const onSignal = () => { stopAll().finally(() => process.exit(130)).catch(() => {}) }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  try {
    const [{ version }] = await admin<[{ version: string }]>`select current_setting('server_version') as version`
    await admin.unsafe(`create database ${dbName}`)
    created = true
    console.log(`bench: database ${dbName}; ${opts.smoke ? 'smoke' : 'full'} run, ${opts.duration} s per scenario after ${opts.warmup} s of warm-up`)

    if (opts.observability || opts.pgbouncer) {
      const mode = opts.observability ? 'observability' : 'pgbouncer'
      const { variants, close } = opts.observability ? await observabilityVariants() : await pgbouncerVariants(databaseUrl)
      let rows: VariantRow[]
      try {
        const serverConnections: ServerConnections = {
          async count () {
            const [{ count }] = await admin<[{ count: number }]>`select count(*)::int as count from pg_stat_activity where datname = ${dbName}`
            return count
          },
          async closeAll () {
            await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${dbName}`
          },
        }
        rows = await compareVariants(databaseUrl, jwtSecret, opts, variants, serverConnections)
      } finally {
        await close()
      }
      await sleep(1000)
      const loadAtEnd = loadavg()
      console.log('\n' + variantTable(rows))
      console.log(`\n${describeLoad(loadAtStart, loadAtEnd)}`)
      const out = opts.out ?? join(root, 'bench-results', `bench-${mode}-${startedAt.toISOString().replaceAll(':', '-')}.json`)
      mkdirSync(dirname(out), { recursive: true })
      writeFileSync(out, JSON.stringify({
        startedAt: startedAt.toISOString(),
        mode,
        durationSeconds: opts.duration,
        warmupSeconds: opts.warmup,
        machine: { cpus: cpus().length, node: process.version, postgres: version, loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadAtEnd },
        rows,
      }, null, 2) + '\n')
      console.log(`\nwritten to ${out}`)
      return
    }

    // argon2 first, while nothing else runs: the ceiling the login scenario is compared to.
    const argon2 = await argon2Ceiling(opts.smoke ? 0.5 : 3)
    console.log(`argon2id (m=${ARGON2_OPTIONS.memoryCost} KiB, t=${ARGON2_OPTIONS.timeCost}, p=${ARGON2_OPTIONS.parallelism}): ` +
      `${argon2.hashesPerSecondOneThread.toFixed(1)} hashes/s and ${argon2.verificationsPerSecondOneThread.toFixed(1)} verifications/s on one thread; ` +
      `threadpool ${argon2.threadpoolSize}, cores ${argon2.cores}: ceiling ${argon2.ceiling.toFixed(1)}/s (× ${argon2.usableThreads}; × ${argon2.threadpoolSize} would be ${argon2.ceilingByThreadpool.toFixed(1)}/s), ` +
      `measured with ${argon2.usableThreads} at once: ${argon2.measuredParallel.toFixed(1)}/s`)

    // The first start migrates the new database; the ones after it are the cold starts measured.
    const first = await startApi(databaseUrl, jwtSecret, opts.source)
    await stop(first.child)
    const coldStarts: number[] = []
    let api: Awaited<ReturnType<typeof startApi>> | undefined
    for (let i = 0; i < (opts.smoke ? 1 : 3); i++) {
      if (api !== undefined) await stop(api.child)
      api = await startApi(databaseUrl, jwtSecret, opts.source)
      coldStarts.push(api.coldStartMs)
    }
    const coldStartMs = coldStarts.sort((a, b) => a - b)[Math.floor(coldStarts.length / 2)]!
    console.log(`cold start to /api/health/ready: ${coldStarts.map((ms) => ms.toFixed(0)).join(', ')} ms (median ${coldStartMs.toFixed(0)} ms)`)

    const seeded = await seed(api!.base)
    const floor = await startFloor(databaseUrl, seeded.userId, seeded.sessionId)
    const peer = await startBetterAuth(databaseUrl)
    const peerSeed = await seedBetterAuth(peer.base)

    const rows: Row[] = []
    for (const scenario of opts.scenarios) {
      // The floor first, then the API (tasks-create grows the table both then list from), then
      // better-auth on its own table.
      for (const server of [floor, api!, peer]) {
        const row = await measure(scenario, server, server === peer ? peerSeed : seeded, opts)
        rows.push(row)
        console.log(`  ${scenario} ${server.name}: ${row.rps.toFixed(0)} req/s, p99 ${row.p99} ms, non-2xx ${row.non2xx}, errors ${row.errors}`)
      }
    }
    const apiHwmMiB = memoryOf(api!.child.pid).hwm / 1024
    // autocannon stops at its deadline with requests still in flight: let them finish first.
    await sleep(1000)
    const targets = evaluate(rows, coldStartMs)
    const loadAtEnd = loadavg()

    console.log('\n' + table(rows))
    console.log(`\n${describeLoad(loadAtStart, loadAtEnd)}`)
    refuseFailedRuns(rows, (row) => row.server)
    console.log(`\nAPI VmHWM (peak resident memory since start): ${apiHwmMiB.toFixed(1)} MiB`)
    console.log(`\ntargets${opts.smoke ? ' (smoke run: shown, not asserted)' : ''}:`)
    for (const target of targets) console.log(`  ${target.met ? 'met   ' : 'MISSED'} ${target.name}: ${target.measured} (goal ${target.goal})`)

    const machine = {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10,
      node: process.version,
      postgres: version,
      loadAverageAtStart: loadAtStart,
      loadAverageAtEnd: loadAtEnd,
    }
    const report = {
      startedAt: startedAt.toISOString(),
      mode: opts.smoke ? 'smoke' : 'full',
      durationSeconds: opts.duration,
      warmupSeconds: opts.warmup,
      apiEntry: opts.source ? 'src/server.ts (tsx)' : process.env.BENCH_API_ENTRY ?? 'dist/src/server.js',
      machine,
      argon2: { options: ARGON2_OPTIONS, ...argon2 },
      coldStartMs: { median: coldStartMs, runs: coldStarts },
      apiHwmMiB,
      rows,
      targets,
    }
    const out = opts.out ?? join(root, 'bench-results', `bench-${startedAt.toISOString().replaceAll(':', '-')}.json`)
    mkdirSync(dirname(out), { recursive: true })
    writeFileSync(out, JSON.stringify(report, null, 2) + '\n')
    console.log(`\nwritten to ${out}`)
  } finally {
    await stopAll()
    if (created) await admin.unsafe(`drop database if exists ${dbName} with (force)`).catch((error: unknown) => console.error(`could not drop ${dbName}:`, error))
    await admin.end({ timeout: 5 })
  }
}

main().catch(async (error: unknown) => {
  console.error('bench failed:', error)
  await stopAll()
  process.exitCode = 1
})
