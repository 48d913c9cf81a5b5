// npm run fuzz [-- --runs N] [-- --seed S]
// The property-based fuzz tests with many more cases than CI runs (FUZZ_RUNS, default here 2000 per
// group), on the embedded database, then on Postgres when TEST_DATABASE_URL is set.
import { spawnSync } from 'node:child_process'
import { parseArgs } from 'node:util'

// tap picks up every file under test/: this one is a command, not a test.
if (process.env.TAP === '1') {
  console.log('1..0 # SKIP the fuzz command (npm run fuzz), not a test')
  process.exit(0)
}

const { values } = parseArgs({ options: { runs: { type: 'string', default: '2000' }, seed: { type: 'string' } } })
const files = ['test/fuzz-routes.test.ts', 'test/fuzz-hostile-input.test.ts']
const modes: Array<[string, string]> = [['embedded (PGlite)', '']]
if (process.env.TEST_DATABASE_URL) modes.push(['Postgres', process.env.TEST_DATABASE_URL])
let status = 0
for (const [label, databaseUrl] of modes) {
  console.log(`== fuzz on ${label}: FUZZ_RUNS=${values.runs}`)
  const result = spawnSync('npx', ['tap', '--disable-coverage', '--timeout', '0', ...files], {
    stdio: 'inherit',
    env: { ...process.env, FUZZ_RUNS: values.runs, TEST_DATABASE_URL: databaseUrl, ...(values.seed === undefined ? {} : { FUZZ_SEED: values.seed }) },
  })
  if (result.status !== 0) status = 1
}
process.exit(status)
