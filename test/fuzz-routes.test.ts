import t from 'tap'
import Fastify from 'fastify'
import { buildTestApp } from './helpers/app.js'
import { checkAnswer, FUZZ_RUNS, fuzzRoutes, ROUTES } from './helpers/fuzz.js'

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

t.test('the oracle itself: a 401 or 429 without a contract code, or a 403 of another kind, is a finding', async (t) => {
  // A bare server answering in the error shape but outside the contract's codes: the oracle must object.
  const bare = Fastify()
  t.teardown(() => bare.close())
  const answers: Record<string, { statusCode: number, error: string, code?: string }> = {
    '/no-code-401': { statusCode: 401, error: 'Unauthorized' },
    '/other-code-401': { statusCode: 401, error: 'Unauthorized', code: 'SOMETHING_ELSE' },
    '/no-code-429': { statusCode: 429, error: 'Too Many Requests' },
    '/other-403': { statusCode: 403, error: 'Forbidden', code: 'FST_FORBIDDEN' },
    '/right-401': { statusCode: 401, error: 'Unauthorized', code: 'TOKEN_MISSING' },
    '/right-403': { statusCode: 403, error: 'Forbidden', code: 'MFA_ENROLMENT_REQUIRED' },
    '/api/metrics': { statusCode: 401, error: 'Unauthorized' },
  }
  for (const [url, body] of Object.entries(answers)) bare.get(url, async (_request, reply) => reply.code(body.statusCode).send({ ...body, message: 'm' }))
  for (const url of ['/no-code-401', '/other-code-401', '/no-code-429', '/other-403']) {
    t.type(checkAnswer(await bare.inject({ url }), { url, method: 'GET' }), 'string', `${url} is a finding`)
  }
  for (const url of ['/right-401', '/right-403', '/api/metrics']) {
    t.equal(checkAnswer(await bare.inject({ url }), { url, method: 'GET' }), undefined, `${url} passes`)
  }
})
