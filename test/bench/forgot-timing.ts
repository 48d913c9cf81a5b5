// How long POST /api/auth/password/forgot takes for a known (verified), an unverified (registered,
// link not used) and an unknown address: medians over N calls each, interleaved so that drift on a
// shared machine hits all three alike.
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

const KINDS = ['known', 'unverified', 'unknown'] as const
type Kind = typeof KINDS[number]
const ORDERS: Kind[][] = [
  ['known', 'unverified', 'unknown'], ['unverified', 'unknown', 'known'], ['unknown', 'known', 'unverified'],
  ['known', 'unknown', 'unverified'], ['unknown', 'unverified', 'known'], ['unverified', 'known', 'unknown'],
]

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
  const { url, addresses } = JSON.parse(Buffer.concat(chunks).toString()) as { url: string, addresses: Record<Kind, string[]> }
  // A few warm-up calls (JIT, the pool, the connection), not counted.
  for (let i = 0; i < 5; i++) await forgot(url, `warm${i}.${randomUUID().slice(0, 8)}@example.test`)
  const times: Record<Kind, number[]> = { known: [], unverified: [], unknown: [] }
  for (let i = 0; i < addresses.known.length; i++) {
    // Each of the six orders in turn, so that no kind always follows another.
    for (const kind of ORDERS[i % ORDERS.length]!) times[kind].push(await forgot(url, addresses[kind][i]!))
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
// Registered with an address whose link was never used: the account exists, the address is not its own.
const unverified = Array.from({ length: calls }, (_, i) => `pending${i}.${randomUUID().slice(0, 8)}@example.test`)
for (const [i, email] of unverified.entries()) {
  const registered = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username: `pending_${i}_${randomUUID().slice(0, 8)}`, password: `a long enough password ${i}`, email } })
  if (registered.statusCode !== 201) throw new Error(`register answered ${registered.statusCode}`)
}
await app.mailer.idle()
const verificationMails = smtp.received.length

const client = spawn(process.execPath, ['--import', 'tsx', process.argv[1]!, '--client', 'yes'], { stdio: ['pipe', 'pipe', 'inherit'] })
client.stdin.end(JSON.stringify({ url: `http://127.0.0.1:${port}`, addresses: { known, unverified, unknown } }))
let output = ''
for await (const chunk of client.stdout) output += String(chunk)
const times = JSON.parse(output) as Record<Kind, number[]>

const quantile = (list: number[], q: number) => [...list].sort((a, b) => a - b)[Math.min(list.length - 1, Math.floor(q * list.length))]!
for (const kind of KINDS) {
  const list = times[kind]
  console.log(`${kind.padEnd(10)} n=${list.length} median ${quantile(list, 0.5).toFixed(2)} ms  p10 ${quantile(list, 0.1).toFixed(2)} ms  p90 ${quantile(list, 0.9).toFixed(2)} ms`)
}
await app.mailer.idle()
console.log(`reset mails received by the SMTP server: ${smtp.received.length - verificationMails} (expected ${calls}: one per known address)`)
await app.close()
await smtp.stop()
