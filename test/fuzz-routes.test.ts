import t from 'tap'
import { buildTestApp } from './helpers/app.js'
import { FUZZ_RUNS, fuzzRoutes, ROUTES } from './helpers/fuzz.js'

// Rate limits would turn most credential requests into early 429s and hide the code behind them.
const app = await buildTestApp(t, { rateLimitAllowList: ['127.0.0.1'] })

t.test(`random requests over every route (${FUZZ_RUNS} per group): no 5xx, the error shape, no change on refusal`, async (t) => {
  const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED)
  await fuzzRoutes(app, FUZZ_RUNS * 4, seed)
  t.pass(`${FUZZ_RUNS * 4} requests over ${ROUTES.length} routes`)
})

t.test('the process is still healthy afterwards', async (t) => {
  t.equal((await app.inject({ method: 'GET', url: '/api/health/ready' })).statusCode, 200)
  t.equal(({} as Record<string, unknown>).role, undefined, 'no prototype was polluted')
})
