import t from 'tap'
import { formatSoak, runSoak, type SoakOptions } from './helpers/soak.js'

// The short soak CI runs (the README records a 5-minute one: npm run soak -- --minutes 5). It needs
// real Postgres, as the long one does.
if (process.env.TEST_DATABASE_URL === undefined || process.env.TEST_DATABASE_URL === '') {
  t.plan(0, 'needs TEST_DATABASE_URL: the soak runs on real Postgres')
} else {
  t.test('20 s of steady mixed load: no error, no heap growth, a calm event loop', async (t) => {
    const options: SoakOptions = {
      durationMs: 15_000,
      warmupMs: 5_000,
      rate: 40,
      users: 8,
      serverUrl: process.env.TEST_DATABASE_URL!,
      log: (line) => t.comment(line),
    }
    const result = await runSoak(options)
    t.comment(formatSoak(result, options))
    t.ok(result.requests > 300, `${result.requests} requests measured`)
    t.equal(result.errors, 0, 'every request answered as expected')
    t.same(result.errorSamples, [])
    t.ok(result.heap.growth < 0.1, `heap after GC grew ${(result.heap.growth * 100).toFixed(1)} % (under 10 %)`)
    // Loose on purpose: a shared CI machine stalls whole processes now and then.
    t.ok(result.eventLoop.p99 < 250, `event-loop delay p99 ${result.eventLoop.p99} ms`)
  })
}
