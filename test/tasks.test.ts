import t from 'tap'
import { eq, sql } from 'drizzle-orm'
import { tasks } from '../src/db/schema.js'
import { buildTestApp, signIn, type SignedIn } from './helpers/app.js'

const app = await buildTestApp(t)
const alice = await signIn(app)
const bob = await signIn(app)

const create = (who: SignedIn, payload: object) => app.inject({ method: 'POST', url: '/api/tasks', cookies: who.cookies, payload })

t.test('creating a task answers 201 {task} with defaults, owned by the caller', async (t) => {
  const response = await create(alice, { title: 'Buy milk' })
  t.equal(response.statusCode, 201)
  const { task } = response.json()
  t.match(task, { id: String, title: 'Buy milk', description: '', done: false, ownerId: alice.id, createdAt: String, updatedAt: String })
  t.same(Object.keys(task).sort(), ['createdAt', 'description', 'done', 'id', 'ownerId', 'title', 'updatedAt'])
  const full = await create(alice, { title: 'Write report', description: 'Q3 numbers', done: true })
  t.match(full.json().task, { title: 'Write report', description: 'Q3 numbers', done: true })
})

t.test('a task can be read, changed field by field, and deleted by its owner', async (t) => {
  const { task } = (await create(alice, { title: 'Draft', description: 'keep me' })).json()
  const read = await app.inject({ url: `/api/tasks/${task.id}`, cookies: alice.cookies })
  t.equal(read.statusCode, 200)
  t.same(read.json().task, task)
  // As if written a minute ago (moved in the database rather than waited for): the edit must move it.
  const [aged] = await app.db.update(tasks).set({ updatedAt: sql`${tasks.updatedAt} - interval '1 minute'` }).where(eq(tasks.id, task.id)).returning()
  const patched = await app.inject({ method: 'PATCH', url: `/api/tasks/${task.id}`, cookies: alice.cookies, payload: { done: true } })
  t.equal(patched.statusCode, 200)
  t.match(patched.json().task, { title: 'Draft', description: 'keep me', done: true }, 'only the given field changed')
  t.ok(new Date(patched.json().task.updatedAt) > aged!.updatedAt, 'updatedAt moved')
  t.equal(patched.json().task.createdAt, task.createdAt)
  const renamed = await app.inject({ method: 'PATCH', url: `/api/tasks/${task.id}`, cookies: alice.cookies, payload: { title: 'Final', description: '' } })
  t.match(renamed.json().task, { title: 'Final', description: '', done: true })
  const deleted = await app.inject({ method: 'DELETE', url: `/api/tasks/${task.id}`, cookies: alice.cookies })
  t.equal(deleted.statusCode, 204)
  t.equal((await app.inject({ url: `/api/tasks/${task.id}`, cookies: alice.cookies })).statusCode, 404)
  t.equal((await app.inject({ method: 'DELETE', url: `/api/tasks/${task.id}`, cookies: alice.cookies })).statusCode, 404)
})

t.test("another user's task is a plain 404 for every verb, and stays unchanged", async (t) => {
  const { task } = (await create(alice, { title: 'Private' })).json()
  const missing = '00000000-0000-4000-8000-000000000000'
  for (const [method, payload] of [['GET', undefined], ['PATCH', { title: 'Hacked' }], ['DELETE', undefined]] as const) {
    const theirs = await app.inject({ method, url: `/api/tasks/${task.id}`, cookies: bob.cookies, ...(payload ? { payload } : {}) })
    const absent = await app.inject({ method, url: `/api/tasks/${missing}`, cookies: bob.cookies, ...(payload ? { payload } : {}) })
    t.equal(theirs.statusCode, 404, `${method} someone else's`)
    t.equal(theirs.body, absent.body, `${method}: indistinguishable from a task that does not exist`)
  }
  const [row] = await app.db.select().from(tasks).where(eq(tasks.id, task.id))
  t.match(row, { title: 'Private', ownerId: alice.id })
  const list = await app.inject({ url: '/api/tasks', cookies: bob.cookies })
  t.notOk(list.json().items.some((item: { id: string }) => item.id === task.id), "not in the other user's list")
})

t.test('bad task input is 400 and changes nothing', async (t) => {
  const { task } = (await create(alice, { title: 'Stable' })).json()
  const before = await app.db.select().from(tasks).where(eq(tasks.ownerId, alice.id))
  const badCreates: Array<[string, unknown]> = [
    ['empty title', { title: '' }], ['title too long', { title: 'x'.repeat(201) }],
    ['description too long', { title: 'ok', description: 'x'.repeat(5001) }], ['no title', { description: 'x' }],
    ['done as a string', { title: 'ok', done: 'true' }], ['title a number', { title: 5 }],
    ['mass-assigned owner', { title: 'ok', ownerId: bob.id }], ['mass-assigned id', { title: 'ok', id: task.id }],
    ['NUL in title', { title: 'a\u0000b' }], ['null title', { title: null }],
  ]
  for (const [label, payload] of badCreates) {
    const response = await create(alice, payload as object)
    t.equal(response.statusCode, 400, label)
    t.equal(response.json().statusCode, 400)
  }
  const badPatches: Array<[string, unknown]> = [
    ['empty patch', {}], ['unknown field', { owner: 'x' }], ['ownerId', { ownerId: bob.id }],
    ['createdAt', { createdAt: '2000-01-01T00:00:00Z' }], ['title too long', { title: 'x'.repeat(201) }], ['done as 1', { done: 1 }],
  ]
  for (const [label, payload] of badPatches) {
    const response = await app.inject({ method: 'PATCH', url: `/api/tasks/${task.id}`, cookies: alice.cookies, payload: payload as object })
    t.equal(response.statusCode, 400, `patch: ${label}`)
  }
  for (const id of ['not-a-uuid', '123', "1' or '1'='1", '00000000-0000-0000-0000-00000000000g']) {
    const response = await app.inject({ url: `/api/tasks/${encodeURIComponent(id)}`, cookies: alice.cookies })
    t.equal(response.statusCode, 400, `id ${id}`)
  }
  const after = await app.db.select().from(tasks).where(eq(tasks.ownerId, alice.id))
  t.same(after, before, 'no task created or changed')
})

t.test('the list query is validated', async (t) => {
  for (const query of ['limit=0', 'limit=101', 'limit=abc', 'cursor=', 'cursor=bm9wZQ', 'other=1', 'limit=1.5']) {
    const response = await app.inject({ url: `/api/tasks?${query}`, cookies: alice.cookies })
    t.equal(response.statusCode, 400, query)
  }
})

t.test('keyset pages: newest first, no gap, no duplicate, even with inserts between fetches', async (t) => {
  const carol = await signIn(app)
  const made: Array<{ id: string, createdAt: string }> = []
  for (let i = 0; i < 25; i++) made.push((await create(carol, { title: `task ${i}` })).json().task)
  // Newest first, as the API orders: by creation time (milliseconds: two tasks made within one share
  // it), then by id. The ISO times have one length, so time + id sorts as the pair does.
  const order = (task: { id: string, createdAt: string }) => task.createdAt + task.id
  const newestFirst = made.sort((a, b) => order(b) < order(a) ? -1 : 1).map((task) => task.id)
  const seen: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const url: string = `/api/tasks?limit=7${cursor === null ? '' : `&cursor=${cursor}`}`
    const page = (await app.inject({ url, cookies: carol.cookies })).json()
    seen.push(...page.items.map((task: { id: string }) => task.id))
    cursor = page.nextCursor
    pages++
    // Inserts between page fetches land before the first page: the walk neither repeats nor skips.
    await create(carol, { title: `late ${pages}` })
  } while (cursor !== null)
  t.equal(pages, 4)
  t.same(seen, newestFirst, 'every original task exactly once, newest first')
  t.equal(new Set(seen).size, seen.length)
  const first = (await app.inject({ url: '/api/tasks', cookies: carol.cookies })).json()
  t.equal(first.items.length, 20, 'the default page is 20')
  t.match(first.items[0].title, /^late/)
})

t.test('tasks need a signed-in caller', async (t) => {
  for (const [method, url] of [['GET', '/api/tasks'], ['POST', '/api/tasks'], ['GET', '/api/tasks/00000000-0000-4000-8000-000000000000']] as const) {
    const response = await app.inject({ method, url, ...(method === 'POST' ? { payload: { title: 'x' } } : {}) })
    t.equal(response.statusCode, 401, `${method} ${url}`)
  }
})

t.test('every task route refuses a signed-out session on the next request, and changes nothing', async (t) => {
  const dan = await signIn(app)
  const { task } = (await create(dan, { title: 'Before sign-out' })).json()
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/logout', cookies: dan.cookies })).statusCode, 204)
  const requests = [
    { method: 'GET', url: '/api/tasks' },
    { method: 'GET', url: `/api/tasks?cursor=${Buffer.from(`${new Date().toISOString()}|${task.id}`).toString('base64url')}` },
    { method: 'POST', url: '/api/tasks', payload: { title: 'After sign-out' } },
    { method: 'GET', url: `/api/tasks/${task.id}` },
    { method: 'PATCH', url: `/api/tasks/${task.id}`, payload: { title: 'Changed after sign-out' } },
    { method: 'DELETE', url: `/api/tasks/${task.id}` },
  ] as const
  for (const request of requests) {
    const response = await app.inject({ ...request, cookies: dan.cookies })
    t.equal(response.statusCode, 401, `${request.method} ${request.url}`)
    t.equal(response.json().code, 'SESSION_REVOKED')
  }
  const rows = await app.db.select().from(tasks).where(eq(tasks.ownerId, dan.id))
  t.equal(rows.length, 1, 'nothing created or deleted')
  t.equal(rows[0]!.title, 'Before sign-out', 'nothing changed')
})

t.test('a user with no tasks gets an empty page, not a 401', async (t) => {
  const erin = await signIn(app)
  const response = await app.inject({ url: '/api/tasks', cookies: erin.cookies })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { items: [], nextCursor: null })
})
