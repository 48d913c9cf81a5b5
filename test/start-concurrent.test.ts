import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { cpSync, existsSync, mkdtempSync, readlinkSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { projectRoot } from '../src/paths.js'
import { freePort } from './helpers/server-process.js'

// Two `npm start` from one checkout at the same moment: both must serve. A fresh copy of the
// project (node_modules linked) so that both find the sources never built, the case that raced.
// Each case compiles or opens an embedded database from scratch in child processes: minutes on a
// loaded 2-core machine, more than the suite's default per-file timeout.
t.setTimeout(600_000)

const root = projectRoot()
const checkout = mkdtempSync(join(tmpdir(), 'concurrent-start-'))
t.teardown(() => rmSync(checkout, { recursive: true, force: true }))
for (const entry of ['src', 'plugins', 'routes', 'drizzle', 'scripts', 'package.json', 'tsconfig.json', 'tsconfig.build.json']) {
  cpSync(join(root, entry), join(checkout, entry), { recursive: true })
}
symlinkSync(join(root, 'node_modules'), join(checkout, 'node_modules'))

const START_TIMEOUT_MS = 240_000

interface Started { port: number, output: () => string, stop: () => Promise<void> }

function childEnv (extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith('TAP') && name !== 'NODE_OPTIONS' && !name.startsWith('npm_')) env[name] = value
  }
  return { ...env, NODE_ENV: 'test', HOST: '127.0.0.1', FRONTEND_PORT: '0', DATA_DIR: 'memory://', DATABASE_URL: '', LOG_LEVEL: 'info', DOCS: 'false', ...extra }
}

/** `npm start` in the copy, resolved once /api/health answers. */
async function npmStart (): Promise<Started> {
  const port = await freePort()
  // Its own process group, so the stop reaches npm's child (the server) too.
  const child = spawn('npm', ['start'], { cwd: checkout, env: childEnv({ PORT: String(port) }), stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = once(child, 'exit')
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    process.kill(-child.pid!, 'SIGTERM')
    await exited
  }
  t.teardown(stop)
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    if (child.exitCode !== null) throw new Error(`npm start exited (${child.exitCode}) before serving:\n${output}`)
    if (Date.now() > deadline) throw new Error(`npm start did not serve within ${START_TIMEOUT_MS} ms:\n${output}`)
    const healthy = await fetch(`http://127.0.0.1:${port}/api/health`).then((response) => response.ok, () => false)
    if (healthy) return { port, output: () => output, stop }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

t.test('two starts at once from an unbuilt checkout both serve', { timeout: START_TIMEOUT_MS + 60_000 }, async (t) => {
  const [first, second] = await Promise.all([npmStart(), npmStart()])
  for (const started of [first, second]) {
    const response = await fetch(`http://127.0.0.1:${started.port}/api/health`)
    t.equal(response.status, 200, `the instance on port ${started.port} serves`)
    t.notMatch(started.output(), /SyntaxError|does not provide an export/, 'no half-written module was loaded')
    t.match(started.output(), /building: compiling the TypeScript/, 'the start says what it is doing')
  }
  const target = readlinkSync(join(checkout, 'dist'))
  t.match(target, /^dist\.[0-9a-f]{16}$/, 'dist points at a hashed build')
  t.ok(existsSync(join(checkout, target, '.complete')), 'and that build is complete')
  await Promise.all([first.stop(), second.stop()])

  const again = await npmStart()
  t.notMatch(again.output(), /building:/, 'unchanged sources: the next start does not compile')
  await again.stop()
})
