// npm run soak -- --minutes N [--rate R] [--users U]
// Runs the real server against real Postgres (DATABASE_URL, else a fresh database on
// 127.0.0.1:5432, dropped afterwards) under a steady mixed load, and prints what it saw. Exit code 1
// when any request failed or the heap grew by 10 % or more.
import { parseArgs } from 'node:util'
import { formatSoak, runSoak, type SoakOptions } from '../helpers/soak.js'

// tap picks up every file under test/: this one is a command, not a test.
if (process.env.TAP === '1') {
  console.log('1..0 # SKIP the soak command (npm run soak), not a test')
  process.exit(0)
}

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '30' },
    rate: { type: 'string', default: '50' },
    users: { type: 'string', default: '10' },
  },
})
const options: SoakOptions = {
  durationMs: Number(values.minutes) * 60_000,
  warmupMs: Number(values.warmup) * 1000,
  rate: Number(values.rate),
  users: Number(values.users),
  databaseUrl: process.env.DATABASE_URL || undefined,
  log: (line) => console.log(line),
}
const result = await runSoak(options)
console.log(formatSoak(result, options))
const failed = result.errors > 0 || result.heap.growth >= 0.1
console.log(failed ? 'soak: FAILED' : 'soak: passed (0 errors, heap growth under 10 %)')
process.exit(failed ? 1 : 0)
