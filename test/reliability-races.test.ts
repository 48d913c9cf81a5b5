import t from 'tap'
import { eq, sql } from 'drizzle-orm'
import { sessions, tasks, users } from '../src/db/schema.js'
import { buildTestApp, cookiesFrom, signIn, STRONG_PASSWORD, type Cookies } from './helpers/app.js'

// Every request here comes from 127.0.0.1; the credential rate limits (10 a minute per username) are
// not what these tests are about.
const app = await buildTestApp(t, { rateLimitAllowList: ['127.0.0.1'] })
const refreshCookie = app.config.refreshCookieName
const accessCookie = app.config.accessCookieName

const refresh = (cookies: Cookies) => app.inject({ method: 'POST', url: '/api/auth/refresh', cookies: { [refreshCookie]: cookies[refreshCookie]! } })
const me = (cookies: Cookies) => app.inject({ method: 'GET', url: '/api/auth/me', cookies: { [accessCookie]: cookies[accessCookie]! } })

t.test('50 parallel registrations of one name: exactly one 201, the rest 409, never a 500', async (t) => {
  const name = 'contested_name'
  const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => app.inject({
    method: 'POST',
    url: '/api/auth/register',
    // Some in other letter cases: uniqueness is case-insensitive.
    payload: { username: i % 3 === 0 ? name.toUpperCase() : name, password: STRONG_PASSWORD },
  })))
  const statuses = responses.map((response) => response.statusCode)
  t.equal(statuses.filter((status) => status === 201).length, 1, 'one winner')
  t.equal(statuses.filter((status) => status === 409).length, 49, 'everyone else is told the name is taken')
  t.ok(responses.filter((response) => response.statusCode === 409).every((response) => response.json().code === 'USERNAME_TAKEN'))
  const [row] = await app.db.select({ n: sql<number>`count(*)::int` }).from(users).where(eq(sql`lower(${users.username})`, name))
  t.equal(row!.n, 1, 'one row')
})

t.test('concurrent refreshes within the grace keep the user signed in', async (t) => {
  const alice = await signIn(app)
  const responses = await Promise.all(Array.from({ length: 10 }, () => refresh(alice.cookies)))
  t.same(responses.map((response) => response.statusCode), Array(10).fill(200), 'every tab gets 200, none REFRESH_REUSED')
  const rotated = responses.filter((response) => response.cookies.some((cookie) => cookie.name === refreshCookie && cookie.value !== ''))
  t.equal(rotated.length, 1, 'exactly one rotation; the others get an access cookie only')
  const newest = cookiesFrom(rotated[0]!, alice.cookies)
  for (const response of responses) {
    t.equal((await me(cookiesFrom(response, alice.cookies))).statusCode, 200, 'each new access cookie works')
  }
  t.equal((await refresh(newest)).statusCode, 200, 'the newest refresh token goes on working')
  const [session] = await app.db.select({ revokedAt: sessions.revokedAt }).from(sessions).where(eq(sessions.userId, alice.id))
  t.equal(session!.revokedAt, null, 'the session is alive')
})

t.test('a logout racing a refresh leaves the session revoked', async (t) => {
  for (let round = 0; round < 8; round++) {
    const bob = await signIn(app)
    const [logout, refreshed] = await Promise.all([
      app.inject({ method: 'POST', url: '/api/auth/logout', cookies: { [accessCookie]: bob.cookies[accessCookie]! } }),
      refresh(bob.cookies),
    ])
    t.equal(logout.statusCode, 204, `round ${round}: logout succeeds`)
    t.ok([200, 401].includes(refreshed.statusCode), `round ${round}: the refresh wins or loses cleanly (${refreshed.statusCode})`)
    const afterRace = cookiesFrom(refreshed, bob.cookies)
    t.equal((await refresh(afterRace)).statusCode, 401, `round ${round}: no refresh token of the session works any more`)
    t.equal((await me(afterRace)).statusCode, 401, `round ${round}: nor does any access token the race handed out`)
    const rows = await app.db.select({ revokedAt: sessions.revokedAt }).from(sessions).where(eq(sessions.userId, bob.id))
    t.ok(rows.length === 1 && rows[0]!.revokedAt !== null, `round ${round}: the session row is revoked`)
  }
})

t.test('concurrent updates of one task never lose the row', async (t) => {
  const carol = await signIn(app)
  const created = await app.inject({ method: 'POST', url: '/api/tasks', cookies: carol.cookies, payload: { title: 'shared', description: 'd' } })
  const id = created.json().task.id as string
  const changes = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? { title: `title ${i}` } : i % 3 === 1 ? { done: i % 2 === 0 } : { description: `description ${i}` }))
  const responses = await Promise.all(changes.map((payload) => app.inject({ method: 'PATCH', url: `/api/tasks/${id}`, cookies: carol.cookies, payload })))
  t.same(responses.map((response) => response.statusCode), Array(30).fill(200), 'every update succeeds')
  const titles = new Set(['shared', ...changes.flatMap((change) => ('title' in change ? [change.title] : []))])
  const after = await app.inject({ method: 'GET', url: `/api/tasks/${id}`, cookies: carol.cookies })
  t.equal(after.statusCode, 200, 'the task is still there')
  t.ok(titles.has(after.json().task.title), 'with a title one of the writers sent')
  const [row] = await app.db.select({ n: sql<number>`count(*)::int` }).from(tasks).where(eq(tasks.ownerId, carol.id))
  t.equal(row!.n, 1, 'one row, not zero, not two')
})

t.test('updates racing a delete: 200 or 404, never a 500, and the delete holds', async (t) => {
  const dave = await signIn(app)
  const id = (await app.inject({ method: 'POST', url: '/api/tasks', cookies: dave.cookies, payload: { title: 'doomed' } })).json().task.id as string
  const requests = Array.from({ length: 20 }, (_, i) => (i === 10
    ? app.inject({ method: 'DELETE', url: `/api/tasks/${id}`, cookies: dave.cookies })
    : app.inject({ method: 'PATCH', url: `/api/tasks/${id}`, cookies: dave.cookies, payload: { title: `edit ${i}` } })))
  const statuses = (await Promise.all(requests)).map((response) => response.statusCode)
  t.equal(statuses[10], 204, 'the delete succeeds')
  t.ok(statuses.every((status) => [200, 204, 404].includes(status)), `only 200, 204 and 404: ${statuses.join(' ')}`)
  t.equal((await app.inject({ method: 'GET', url: `/api/tasks/${id}`, cookies: dave.cookies })).statusCode, 404, 'gone for good')
})
