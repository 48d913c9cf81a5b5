// How long POST /api/auth/password/forgot takes for a known and for an unknown address: medians
// over N calls each, interleaved so that drift on a shared machine hits both alike.
//   node --import tsx test/bench/forgot-timing.ts [--calls 50]
// Runs the real app in this process on a fresh in-memory database (or DATABASE_URL's), with a real
// SMTP server on loopback receiving the mails; the timing client is a separate process (a client in
// this process would also wait for whatever the server does after its answer is on the wire).
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { parseArgs } from 'node:util'
import { buildApp } from '../../src/app.js'
import { users } from '../../src/db/schema.js'
import { testConfig } from '../helpers/app.js'
import { TestSmtpServer } from '../helpers/smtp.js'

const { values } = parseArgs({ options: { calls: { type: 'string', default: '50' }, client: { type: 'string' } } })
const calls = Number(values.calls)

async function forgot (url: string, email: string): Promise<number> {
  const started = process.hrtime.bigint()
  const response = await fetch(`${url}/api/auth/password/forgot`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email }),
  })
  await response.text()
  if (response.status !== 202) throw new Error(`forgot answered ${response.status}`)
  return Number(process.hrtime.bigint() - started) / 1e6
}

if (values.client !== undefined) {
  // The client: `--client <url>`, the addresses as JSON on stdin; prints the times as JSON.
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  const { url, known, unknown } = JSON.parse(Buffer.concat(chunks).toString()) as { url: string, known: string[], unknown: string[] }
  // A few warm-up calls (JIT, the pool, the connection), not counted.
  for (let i = 0; i < 5; i++) await forgot(url, `warm${i}.${randomUUID().slice(0, 8)}@example.test`)
  const times = { known: [] as number[], unknown: [] as number[] }
  for (let i = 0; i < known.length; i++) {
    // Alternate which goes first, so neither always follows the other.
    const order = i % 2 === 0 ? (['known', 'unknown'] as const) : (['unknown', 'known'] as const)
    for (const kind of order) times[kind].push(await forgot(url, kind === 'known' ? known[i]! : unknown[i]!))
  }
  process.stdout.write(JSON.stringify(times))
  process.exit(0)
}

const smtp = await TestSmtpServer.start()
const app = await buildApp({
  config: testConfig({ databaseUrl: process.env.DATABASE_URL || undefined, smtpUrl: smtp.url, rateLimitAllowList: ['127.0.0.1'] }),
  pressure: { maxEventLoopDelay: 0 },
})
await app.listen({ port: 0, host: '127.0.0.1' })
const { port } = app.server.address() as { port: number }

// One known account per call: the per-address limit (5 an hour) would refuse a sixth call for one address.
const known = Array.from({ length: calls }, (_, i) => `known${i}.${randomUUID().slice(0, 8)}@example.test`)
await app.db.insert(users).values(known.map((email, i) => ({ username: `timing_${i}_${randomUUID().slice(0, 8)}`, passwordHash: 'not-a-hash', email })))
const unknown = Array.from({ length: calls }, (_, i) => `nobody${i}.${randomUUID().slice(0, 8)}@example.test`)

const client = spawn(process.execPath, ['--import', 'tsx', process.argv[1]!, '--client', 'yes'], { stdio: ['pipe', 'pipe', 'inherit'] })
client.stdin.end(JSON.stringify({ url: `http://127.0.0.1:${port}`, known, unknown }))
let output = ''
for await (const chunk of client.stdout) output += String(chunk)
const times = JSON.parse(output) as { known: number[], unknown: number[] }

const quantile = (list: number[], q: number) => [...list].sort((a, b) => a - b)[Math.min(list.length - 1, Math.floor(q * list.length))]!
for (const kind of ['known', 'unknown'] as const) {
  const list = times[kind]
  console.log(`${kind.padEnd(8)} n=${list.length} median ${quantile(list, 0.5).toFixed(2)} ms  p10 ${quantile(list, 0.1).toFixed(2)} ms  p90 ${quantile(list, 0.9).toFixed(2)} ms`)
}
await app.mailer.idle()
console.log(`mails received by the SMTP server: ${smtp.received.length} (expected ${calls}: one per known address)`)
await app.close()
await smtp.stop()
