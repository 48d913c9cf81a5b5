import t, { type Test } from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freshDatabaseUrl, STRONG_PASSWORD, uniqueName } from './helpers/app.js'
import { HttpClient } from './helpers/http-client.js'
import { killServer, startServer } from './helpers/server-process.js'

const TASKS = 40

/**
 * Creates TASKS tasks, each acknowledged (201) before the next is sent, SIGKILLs the server the moment
 * the last answer arrives (no shutdown, no flush, no close), restarts it on the same data and looks
 * for every one of them.
 */
async function killAfterAcknowledgedWrites (t: Test, env: Record<string, string>) {
  const first = await startServer(env)
  t.teardown(() => killServer(first))
  const username = uniqueName('durable')
  const client = new HttpClient(first.url)
  t.equal((await client.request('POST', '/api/auth/register', { username, password: STRONG_PASSWORD })).status, 201)
  t.equal((await client.request('POST', '/api/auth/login', { username, password: STRONG_PASSWORD })).status, 200)

  const acknowledged: string[] = []
  for (let i = 0; i < TASKS; i++) {
    // Half of them concurrently: several commits in flight at the moment of the kill.
    const batch = i % 2 === 0
      ? [client.request('POST', '/api/tasks', { title: `task ${i}` })]
      : [client.request('POST', '/api/tasks', { title: `task ${i}` }), client.request('POST', '/api/tasks', { title: `task ${i} bis` })]
    for (const response of await Promise.all(batch)) {
      if (response.status !== 201) throw new Error(`create failed: ${response.status} ${response.text} ${first.output().split('\n').filter((line) => line.includes('overloaded')).slice(0, 3).join('\n')}`)
      acknowledged.push((response.json() as { task: { id: string } }).task.id)
    }
  }
  first.child.kill('SIGKILL')
  const { signal } = await first.exited
  t.equal(signal, 'SIGKILL', 'killed, not shut down')

  const second = await startServer(env)
  t.teardown(() => killServer(second))
  const after = new HttpClient(second.url)
  t.equal((await after.request('POST', '/api/auth/login', { username, password: STRONG_PASSWORD })).status, 200, 'the account survived')
  const found = new Set<string>()
  let cursor: string | null = null
  do {
    const page = await after.request('GET', `/api/tasks?limit=100${cursor === null ? '' : `&cursor=${cursor}`}`)
    t.equal(page.status, 200)
    const body = page.json() as { items: Array<{ id: string }>, nextCursor: string | null }
    for (const item of body.items) found.add(item.id)
    cursor = body.nextCursor
  } while (cursor !== null)
  const missing = acknowledged.filter((id) => !found.has(id))
  t.same(missing, [], `all ${acknowledged.length} acknowledged tasks are there after the restart`)
  second.child.kill('SIGTERM')
  t.equal((await second.exited).code, 0)
}

t.test('embedded database (PGlite in DATA_DIR): no acknowledged write is lost to a SIGKILL', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'cookie-auth-durability-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  await killAfterAcknowledgedWrites(t, { DATA_DIR: dataDir, DATABASE_URL: '', RATE_LIMIT_ALLOWLIST: '127.0.0.1' })
})

t.test('Postgres: no acknowledged write is lost to a SIGKILL', { skip: process.env.TEST_DATABASE_URL ? false : 'needs TEST_DATABASE_URL' }, async (t) => {
  const databaseUrl = await freshDatabaseUrl(t)
  const dataDir = await mkdtemp(join(tmpdir(), 'cookie-auth-durability-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  await killAfterAcknowledgedWrites(t, { DATA_DIR: dataDir, DATABASE_URL: databaseUrl!, RATE_LIMIT_ALLOWLIST: '127.0.0.1' })
})
