import t from 'tap'
import { and, eq, sql } from 'drizzle-orm'
import { changeRole, deleteUser } from '../src/db/queries/users.js'
import { LastAdmin } from '../src/errors.js'
import { auditEvents, sessions, tasks, users } from '../src/db/schema.js'
import { buildTestApp, signIn, type SignedIn } from './helpers/app.js'

const app = await buildTestApp(t)
const roleOf = async (id: string) => (await app.db.select({ role: users.role }).from(users).where(eq(users.id, id)))[0]?.role
const as = (who: SignedIn | undefined, method: 'GET' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
  app.inject({ method, url, ...(who ? { cookies: who.cookies } : {}), ...(payload ? { payload } : {}) })

t.test('the access-control matrix: anonymous, the user themself, another user, an admin', async (t) => {
  const admin = await signIn(app, { role: 'admin', seeded: true })
  const owner = await signIn(app, { seeded: true })
  const other = await signIn(app, { seeded: true })
  const cases: Array<[string, 'GET' | 'PATCH' | 'DELETE', string, object | undefined, [number, number, number, number]]> = [
    //                                                         anonymous, owner, other, admin
    ['list users', 'GET', '/api/users', undefined, [401, 403, 403, 200]],
    ['read a user', 'GET', `/api/users/${owner.id}`, undefined, [401, 200, 404, 200]],
    ['change a role', 'PATCH', `/api/users/${owner.id}`, { role: 'user' }, [401, 403, 403, 200]],
    ['read the audit log', 'GET', '/api/audit', undefined, [401, 403, 403, 200]],
    // Last: it signs `other` out.
    ["end a user's sessions", 'DELETE', `/api/users/${other.id}/sessions`, undefined, [401, 403, 403, 204]],
  ]
  for (const [label, method, url, payload, expected] of cases) {
    const actual = []
    for (const who of [undefined, owner, other, admin]) actual.push((await as(who, method, url, payload)).statusCode)
    t.same(actual, expected, label)
  }
  const forbidden = await as(owner, 'GET', '/api/users')
  t.equal(forbidden.json().code, 'FORBIDDEN_ROLE')
  const denied = await app.db.select().from(auditEvents).where(eq(auditEvents.type, 'access_denied'))
  t.ok(denied.some((event) => event.userId === owner.id), 'refusals are audited as access_denied')
})

t.test('only an admin may change a role, and a refused write changes nothing', async (t) => {
  const admin = await signIn(app, { role: 'admin', seeded: true })
  const alice = await signIn(app, { seeded: true })
  const promote = { role: 'admin' }
  t.equal((await as(undefined, 'PATCH', `/api/users/${alice.id}`, promote)).statusCode, 401)
  t.equal((await as(alice, 'PATCH', `/api/users/${alice.id}`, promote)).json().code, 'FORBIDDEN_ROLE', 'no self-promotion')
  t.equal(await roleOf(alice.id), 'user')
  const byAdmin = await as(admin, 'PATCH', `/api/users/${alice.id}`, promote)
  t.equal(byAdmin.statusCode, 200)
  t.match(byAdmin.json().user, { id: alice.id, role: 'admin' })
  t.notOk('passwordHash' in byAdmin.json().user, 'the hash never leaves the server')
  t.equal((await as(alice, 'GET', '/api/users')).statusCode, 200, "the user's existing session goes on with the new role")
  const [event] = await app.db.select().from(auditEvents).where(and(eq(auditEvents.type, 'role_changed'), eq(auditEvents.userId, alice.id)))
  t.match(event, { userId: alice.id, actorId: admin.id, detail: { role: 'admin' } })
  for (const body of [{ role: 'superuser' }, { role: 'admin', username: 'x' }, {}, { role: 1 }]) {
    t.equal((await as(admin, 'PATCH', `/api/users/${alice.id}`, body)).statusCode, 400, JSON.stringify(body))
  }
  t.equal((await as(admin, 'PATCH', '/api/users/00000000-0000-4000-8000-000000000000', promote)).statusCode, 404)
  t.equal((await as(admin, 'PATCH', '/api/users/nope', promote)).statusCode, 400)
})

t.test('a demoted admin loses admin routes on the next request', async (t) => {
  const root = await signIn(app, { role: 'admin', seeded: true })
  const deputy = await signIn(app, { role: 'admin', seeded: true })
  t.equal((await as(deputy, 'GET', '/api/audit')).statusCode, 200)
  t.equal((await as(root, 'PATCH', `/api/users/${deputy.id}`, { role: 'user' })).statusCode, 200)
  const after = await as(deputy, 'GET', '/api/audit')
  t.equal(after.statusCode, 403)
  t.equal(after.json().code, 'FORBIDDEN_ROLE')
})

t.test('the last admin can be neither demoted nor deleted, even by two admins acting at once', async (t) => {
  const solo = await buildTestApp(t)
  const a = await signIn(solo, { role: 'admin', seeded: true })
  const b = await signIn(solo, { role: 'admin', seeded: true })
  const admins = async () => (await solo.db.select({ n: sql<number>`count(*)::int` }).from(users).where(eq(users.role, 'admin')))[0]!.n
  const [demoteB, demoteA] = await Promise.all([
    solo.inject({ method: 'PATCH', url: `/api/users/${b.id}`, cookies: a.cookies, payload: { role: 'user' } }),
    solo.inject({ method: 'PATCH', url: `/api/users/${a.id}`, cookies: b.cookies, payload: { role: 'user' } }),
  ])
  // The loser is refused either by the lock (409: it would be the last admin) or, if the winner
  // committed before its role check, as a non-admin (403). Either way one admin remains.
  t.equal([demoteA.statusCode, demoteB.statusCode].filter((code) => code === 200).length, 1, 'exactly one demotion wins')
  t.ok([demoteA.statusCode, demoteB.statusCode].every((code) => [200, 403, 409].includes(code)))
  t.equal(await admins(), 1)
  const survivor = demoteA.statusCode === 200 ? b : a
  const selfDemote = await solo.inject({ method: 'PATCH', url: `/api/users/${survivor.id}`, cookies: survivor.cookies, payload: { role: 'user' } })
  t.equal(selfDemote.statusCode, 409)
  t.equal(selfDemote.json().code, 'LAST_ADMIN')
  const selfDelete = await solo.inject({ method: 'DELETE', url: `/api/users/${survivor.id}`, cookies: survivor.cookies })
  t.equal(selfDelete.statusCode, 409)
  t.equal(await admins(), 1)

  // Past the role checks, at the lock itself: both transactions start together.
  const c = await signIn(solo, { role: 'admin', seeded: true })
  const outcomes = await Promise.allSettled([
    solo.db.transaction((tx) => changeRole(tx, c.id, 'user')),
    solo.db.transaction((tx) => changeRole(tx, survivor.id, 'user')),
  ])
  t.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1, 'one demotion commits')
  t.ok(outcomes.some((o) => o.status === 'rejected' && o.reason instanceof LastAdmin), 'the other finds itself last')
  t.equal(await admins(), 1)

  const d = await signIn(solo, { role: 'admin', seeded: true })
  const remaining = (await solo.db.select({ id: users.id }).from(users).where(eq(users.role, 'admin'))).map((u) => u.id)
  t.equal(remaining.length, 2, 'two admins race to be deleted')
  t.ok(remaining.includes(d.id), 'the newly promoted admin among them')
  const deletions = await Promise.allSettled(remaining.map((id) => solo.db.transaction((tx) => deleteUser(tx, id))))
  t.equal(deletions.filter((o) => o.status === 'rejected' && o.reason instanceof LastAdmin).length, 1, 'concurrent deletions leave one admin')
  t.equal(await admins(), 1)
})

t.test('deleting a user deletes their tasks and ends their sessions at once', async (t) => {
  const admin = await signIn(app, { role: 'admin', seeded: true })
  const dave = await signIn(app, { seeded: true })
  await app.inject({ method: 'POST', url: '/api/tasks', cookies: dave.cookies, payload: { title: 'soon gone' } })
  const response = await as(admin, 'DELETE', `/api/users/${dave.id}`)
  t.equal(response.statusCode, 204)
  t.equal((await as(dave, 'GET', '/api/tasks')).statusCode, 401, 'mid-session: refused on the next request')
  t.equal((await app.db.select().from(tasks).where(eq(tasks.ownerId, dave.id))).length, 0)
  t.equal((await app.db.select().from(sessions).where(eq(sessions.userId, dave.id))).length, 0)
  const [event] = await app.db.select().from(auditEvents).where(and(eq(auditEvents.userId, dave.id), eq(auditEvents.type, 'user_deleted')))
  t.match(event, { actorId: admin.id, detail: { username: dave.username } })
  t.equal((await as(admin, 'DELETE', `/api/users/${dave.id}`)).statusCode, 404)
})

t.test('a user may delete themself but nobody else', async (t) => {
  const erin = await signIn(app, { seeded: true })
  const frank = await signIn(app, { seeded: true })
  t.equal((await as(erin, 'DELETE', `/api/users/${frank.id}`)).statusCode, 404)
  t.ok(await roleOf(frank.id), 'frank still exists')
  const self = await as(erin, 'DELETE', `/api/users/${erin.id}`)
  t.equal(self.statusCode, 204)
  t.match(String(self.headers['set-cookie']), /__Host-access_token=; Max-Age=0/, 'and is signed out')
  t.equal(await roleOf(erin.id), undefined)
})

t.test('an admin can end every session of a user', async (t) => {
  const admin = await signIn(app, { role: 'admin', seeded: true })
  const gina = await signIn(app, { seeded: true })
  t.equal((await as(admin, 'DELETE', `/api/users/${gina.id}/sessions`)).statusCode, 204)
  t.equal((await as(gina, 'GET', '/api/tasks')).statusCode, 401)
  t.equal((await as(admin, 'DELETE', '/api/users/00000000-0000-4000-8000-000000000000/sessions')).statusCode, 404)
})

t.test('users are listed newest first in keyset pages, without hashes', async (t) => {
  const admin = await signIn(app, { role: 'admin', seeded: true })
  const seen: string[] = []
  let cursor: string | null = null
  do {
    const url: string = `/api/users?limit=3${cursor === null ? '' : `&cursor=${cursor}`}`
    const page = (await as(admin, 'GET', url)).json()
    for (const user of page.items) {
      t.same(Object.keys(user).sort(), ['createdAt', 'email', 'emailVerified', 'id', 'mfa', 'role', 'username'])
      seen.push(user.id)
    }
    cursor = page.nextCursor
  } while (cursor !== null)
  const all = await app.db.select({ id: users.id }).from(users)
  t.equal(seen.length, all.length)
  t.equal(new Set(seen).size, seen.length)
  t.equal(seen[0], admin.id, 'newest first')
})
