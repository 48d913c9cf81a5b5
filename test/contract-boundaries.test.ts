import t from 'tap'
import { buildTestApp, signIn } from './helpers/app.js'

// API.md's limits, exactly at the edge: the longest and shortest allowed values are accepted, one
// character more (or less) is a 400 that stores nothing. The numbers are the contract's, written out
// here rather than read from the code, so a changed rule in the code shows up as a failure.
const app = await buildTestApp(t, { rateLimitAllowList: ['127.0.0.1'] })
const alice = await signIn(app)

// Not among the common passwords, whatever its length.
const passwordOf = (length: number) => 'Qz7-vexing-kettle-'.repeat(20).slice(0, length)
const register = (username: string, password: string) => app.inject({ method: 'POST', url: '/api/auth/register', payload: { username, password } })

t.test('username: 3 and 32 characters accepted, 2 and 33 refused', async (t) => {
  const stamp = Date.now().toString(36)
  const three = `a${stamp}`.slice(0, 3)
  const thirtyTwo = `u_${stamp}`.padEnd(32, 'x')
  t.equal(thirtyTwo.length, 32)
  t.equal((await register(three, passwordOf(12))).statusCode, 201, '3 characters')
  t.equal((await register(thirtyTwo, passwordOf(12))).statusCode, 201, '32 characters')
  for (const [label, name] of [['2 characters', 'ab'], ['33 characters', `${thirtyTwo}y`]] as const) {
    const refused = await register(name, passwordOf(12))
    t.equal(refused.statusCode, 400, label)
    t.equal(refused.json().code, 'FST_ERR_VALIDATION', `${label}: a validation error`)
  }
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: thirtyTwo, password: passwordOf(12) } })
  t.equal(login.statusCode, 200, 'the 32-character name signs in')
})

t.test('password: 8 and 256 characters accepted, 7 and 257 refused', async (t) => {
  for (const length of [8, 256]) {
    const name = `pw${length}_${Date.now().toString(36)}`
    t.equal((await register(name, passwordOf(length))).statusCode, 201, `${length} characters`)
    const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: name, password: passwordOf(length) } })
    t.equal(login.statusCode, 200, `${length} characters sign in`)
  }
  for (const length of [7, 257]) {
    const refused = await register(`pw${length}_${Date.now().toString(36)}`, passwordOf(length))
    t.equal(refused.statusCode, 400, `${length} characters refused`)
  }
  // The same bounds on a password change.
  const change = (newPassword: string) => app.inject({
    method: 'POST', url: '/api/auth/password', cookies: alice.cookies, payload: { currentPassword: alice.password, newPassword },
  })
  t.equal((await change(passwordOf(257))).statusCode, 400, 'a new password of 257 characters refused')
  t.equal((await change(passwordOf(7))).statusCode, 400, 'a new password of 7 characters refused')
})

t.test('task title: 1 and 200 characters accepted, 0 and 201 refused; description: 5000 accepted, 5001 refused', async (t) => {
  const create = (payload: object) => app.inject({ method: 'POST', url: '/api/tasks', cookies: alice.cookies, payload })
  const longest = await create({ title: 'T'.repeat(200), description: 'd'.repeat(5000) })
  t.equal(longest.statusCode, 201, 'title 200, description 5000')
  t.equal(longest.json().task.title.length, 200)
  t.equal(longest.json().task.description.length, 5000)
  t.equal((await create({ title: 'T' })).statusCode, 201, 'title 1')
  const countBefore = (await app.inject({ url: '/api/tasks?limit=100', cookies: alice.cookies })).json().items.length
  for (const [label, payload] of [
    ['title 0', { title: '' }], ['title 201', { title: 'T'.repeat(201) }], ['description 5001', { title: 'x', description: 'd'.repeat(5001) }],
  ] as const) {
    t.equal((await create(payload)).statusCode, 400, label)
  }
  const id = longest.json().task.id as string
  const patch = (payload: object) => app.inject({ method: 'PATCH', url: `/api/tasks/${id}`, cookies: alice.cookies, payload })
  t.equal((await patch({ title: 'U'.repeat(200), description: 'e'.repeat(5000) })).statusCode, 200, 'the same limits on an edit: accepted at the edge')
  t.equal((await patch({ title: 'U'.repeat(201) })).statusCode, 400, 'title 201 on an edit')
  t.equal((await patch({ description: 'e'.repeat(5001) })).statusCode, 400, 'description 5001 on an edit')
  const after = (await app.inject({ url: '/api/tasks?limit=100', cookies: alice.cookies })).json()
  t.equal(after.items.length, countBefore, 'no refused task was stored')
  t.match(after.items.find((task: { id: string }) => task.id === id), { title: 'U'.repeat(200), description: 'e'.repeat(5000) }, 'refused edits changed nothing')
})
