import t from 'tap'
import { eq } from 'drizzle-orm'
import { tasks } from '../src/db/schema.js'
import { buildTestApp, signIn } from './helpers/app.js'

const app = await buildTestApp(t)
const alice = await signIn(app)

const post = (url: string, payload: unknown, cookies = alice.cookies) => app.inject({ method: 'POST', url, payload: payload as object, cookies })

t.test('a title of only white space or invisible characters is refused, and changes nothing', async (t) => {
  for (const title of ['   ', '\t\n', '\u200B', ' \u2060 ']) {
    const response = await post('/api/tasks', { title })
    t.equal(response.statusCode, 400, JSON.stringify(title))
    t.equal(response.json().code, 'FST_ERR_VALIDATION')
    t.equal(response.json().message, 'body/title must contain at least one visible character (and no NUL character)')
  }
  t.equal((await app.db.select().from(tasks).where(eq(tasks.ownerId, alice.id))).length, 0, 'no task was stored')
})

t.test('titles are stored trimmed, on create and on edit', async (t) => {
  const created = await post('/api/tasks', { title: '  Buy milk \n' })
  t.equal(created.statusCode, 201)
  t.equal(created.json().task.title, 'Buy milk')
  const id = created.json().task.id as string
  const blank = await app.inject({ method: 'PATCH', url: `/api/tasks/${id}`, payload: { title: '  ' }, cookies: alice.cookies })
  t.equal(blank.statusCode, 400, 'an edit to a blank title is refused')
  const [row] = await app.db.select().from(tasks).where(eq(tasks.id, id))
  t.equal(row?.title, 'Buy milk', 'and the title is unchanged')
  const edited = await app.inject({ method: 'PATCH', url: `/api/tasks/${id}`, payload: { title: ' Buy oat milk ' }, cookies: alice.cookies })
  t.equal(edited.json().task.title, 'Buy oat milk')
})

t.test('validation messages name the field and say the rule in words', async (t) => {
  const cases: Array<[string, unknown, string]> = [
    ['/api/tasks', { title: 'x', colour: 'red' }, 'body/colour is not a field this request takes'],
    ['/api/tasks', {}, 'body/title is required'],
    ['/api/tasks', { title: 'x'.repeat(201) }, 'body/title must be at most 200 characters'],
    ['/api/tasks', { title: 'x', done: 'yes' }, 'body/done must be true or false'],
    ['/api/tasks', { title: 'a\u0000b' }, 'body/title must contain at least one visible character (and no NUL character)'],
    ['/api/auth/register', { username: 'ab', password: 'long-enough-password' }, 'body/username must be at least 3 characters'],
    ['/api/auth/register', { username: 'bad name!', password: 'long-enough-password' }, 'body/username may hold only the letters A–Z and a–z, the digits 0–9, and _ . -'],
  ]
  for (const [url, payload, message] of cases) {
    const response = await post(url, payload)
    t.equal(response.statusCode, 400, JSON.stringify(payload))
    t.equal(response.json().message, message)
  }
  const limit = await app.inject({ url: '/api/tasks?limit=0', cookies: alice.cookies })
  t.equal(limit.json().message, 'querystring/limit must be at least 1')
  const id = await app.inject({ url: '/api/tasks/not-a-uuid', cookies: alice.cookies })
  t.equal(id.json().message, 'params/id must be a UUID')
  const empty = await app.inject({ method: 'PATCH', url: '/api/tasks/00000000-0000-4000-8000-000000000000', payload: {}, cookies: alice.cookies })
  t.equal(empty.json().message, 'body must have at least 1 field')
})

t.test('a role is one of the named choices', async (t) => {
  const admin = await signIn(app, { role: 'admin' })
  const response = await app.inject({ method: 'PATCH', url: `/api/users/${alice.id}`, payload: { role: 'root' }, cookies: admin.cookies })
  t.equal(response.statusCode, 400)
  t.equal(response.json().message, 'body/role must be one of: user, admin')
})
