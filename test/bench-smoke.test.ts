import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import postgres from 'postgres'
import t from 'tap'

// The benchmark's smoke run (≈2 s per scenario, targets shown, not asserted), so `npm run bench`
// cannot rot. It needs a real Postgres server: CI's second pass sets TEST_DATABASE_URL.
const serverUrl = process.env.TEST_DATABASE_URL

async function reachable (url: string): Promise<boolean> {
  const client = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} })
  try {
    await client`select 1`
    return true
  } catch {
    return false
  } finally {
    await client.end({ timeout: 1 })
  }
}

const skip = serverUrl === undefined || serverUrl === ''
  ? 'TEST_DATABASE_URL is not set'
  : await reachable(serverUrl) ? false : 'Postgres at TEST_DATABASE_URL is unreachable'

t.test('the benchmark runs end to end in smoke mode and reports every scenario', { skip, timeout: 180_000 }, async (t) => {
  const out = join(t.testdir(), 'bench.json')
  // From src/ through tsx: CI does not build dist/ before the tests.
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', 'test/bench/run.ts', '--smoke', '--source', '--duration', '1.5', '--warmup', '0.5', '--out', out], {
      env: { ...process.env, DATABASE_URL: serverUrl! },
      timeout: 150_000,
      maxBuffer: 16 * 1024 * 1024,
    }, (error, stdout, stderr) => {
      if (error !== null) reject(Object.assign(error, { stdout, stderr }))
      else resolve({ stdout })
    })
  })

  t.match(stdout, /\| scenario\s+\| server\s+\| req\/s/, 'prints the table')
  const report = JSON.parse(readFileSync(out, 'utf8')) as {
    mode: string
    rows: Array<{ scenario: string, server: string, rps: number, p99: number, non2xx: number, errors: number, peakRssMiB: number }>
    argon2: { ceiling: number, usableThreads: number }
    coldStartMs: { median: number }
    targets: Array<{ name: string, met: boolean }>
  }
  t.equal(report.mode, 'smoke')
  const scenarios = ['tasks-list', 'tasks-create', 'me', 'login', 'health-during-login']
  for (const scenario of scenarios) {
    for (const server of ['api', 'floor', 'better-auth']) {
      const row = report.rows.find((r) => r.scenario === scenario && r.server === server)
      t.ok(row, `${scenario} on the ${server} is reported`)
      if (row === undefined) continue
      // better-auth hashes with scrypt in JavaScript, on its event loop: in a 1.5 s smoke window on a
      // busy machine its sign-in storm may finish no request at all. The full run measures it.
      const mayBeIdle = server === 'better-auth' && (scenario === 'login' || scenario === 'health-during-login')
      if (!mayBeIdle) t.ok(row.rps > 0, `${scenario} on the ${server} served requests`)
      t.equal(row.errors, 0, `${scenario} on the ${server}: no connection errors or timeouts`)
      t.equal(row.non2xx, 0, `${scenario} on the ${server}: every answer 2xx`)
      t.ok(row.peakRssMiB > 0, `${scenario} on the ${server}: memory sampled`)
    }
  }
  t.ok(report.argon2.ceiling > 0 && report.argon2.usableThreads >= 1, 'argon2 ceiling measured')
  t.ok(report.coldStartMs.median > 0, 'cold start measured')
  // Three hot scenarios × (floor ratio, p99, better-auth ratio), login, health, memory, cold start.
  t.equal(report.targets.length, 13, 'every target evaluated')
})
