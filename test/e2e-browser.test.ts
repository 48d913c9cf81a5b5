import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { and, eq, isNull } from 'drizzle-orm'
import type { BrowserContext, Page, Route } from 'playwright-core'
import { auditEvents, refreshTokens, sessions, tasks, users } from '../src/db/schema.js'
import { promote, STRONG_PASSWORD } from './helpers/app.js'
import {
  CHROMIUM, hasChromium, launchChromium, newProfile, screenshot, signInThroughForm,
  startHostileSite, startStack, textOf, waitForText, watchForPageErrors, type SeenRequest,
} from './helpers/e2e-browser.js'
import { toolSkip } from './helpers/tools.js'

// Short enough that the access cookie runs out between two clicks: every scenario below also
// proves that the silent refresh works while the user just goes on.
const ACCESS_TOKEN_TTL = 2
const PAST_EXPIRY_MS = ACCESS_TOKEN_TTL * 1000 + 600

const skip = toolSkip(t, CHROMIUM, hasChromium(), 'apt-get install chromium; .ci/run does it')

t.test('the example frontend on localhost works against the API on 127.0.0.1, another site', { skip }, async (t) => {
  const { app, seen, apiOrigin, frontendUrl, mirrorFrontendUrl } = await startStack(t, { accessTokenTtl: ACCESS_TOKEN_TTL })
  const browser = await launchChromium(t)
  const alice = { username: 'alice', password: STRONG_PASSWORD, id: '' }
  const newPassword = 'copper-Lantern-77-drift'

  const profile = await newProfile(browser)
  const page = await profile.newPage()
  const problems = watchForPageErrors(page)
  const myTasks = (on: Page = page) => on.getByRole('list', { name: 'Tasks' }).getByRole('listitem')
  const task = (title: string, on: Page = page) => myTasks(on).filter({ hasText: title })
  const notice = (on: Page = page) => on.getByRole('status')
  const apiCalls = (from: number, filter: (request: SeenRequest) => boolean = () => true) =>
    seen.slice(from).filter((request) => request.method !== 'OPTIONS' && filter(request))

  const userRow = async (username: string) => (await app.db.select().from(users).where(eq(users.username, username)))[0]
  const taskRows = async () => app.db.select().from(tasks).where(eq(tasks.ownerId, alice.id))
  const activeSessions = async (userId = alice.id) =>
    app.db.select().from(sessions).where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt)))

  await t.test('a visitor registers, is told in plain words what went wrong, and lands on an empty task list', async (t) => {
    await page.goto(frontendUrl)
    await page.getByRole('heading', { name: 'Sign in' }).waitFor()
    await screenshot(page, 'sign-in')

    await page.getByRole('link', { name: 'Create an account' }).click()
    await page.getByRole('heading', { name: 'Create an account' }).waitFor()
    await page.getByLabel('Username').fill(alice.username)
    await page.getByLabel('Password', { exact: true }).fill('password123')
    await page.getByLabel('Repeat password').fill('password123')
    await page.getByRole('button', { name: 'Create account' }).click()
    t.match(await waitForText(page.getByRole('alert'), 'common'), /most common ones and easy to guess/, 'a common password is refused in words')
    t.equal(await userRow(alice.username), undefined, 'and no account was created')
    await screenshot(page, 'register-error')

    await page.getByLabel('Password', { exact: true }).fill(alice.password)
    await page.getByLabel('Repeat password').fill(alice.password)
    await page.getByRole('button', { name: 'Create account' }).click()
    await page.getByRole('heading', { name: 'My tasks' }).waitFor()
    t.match(await textOf(notice()), /Welcome, alice!/)
    t.match(await textOf(page.locator('.who')), /Signed in as alice/)
    t.match(await textOf(page.getByText('No tasks yet')), /Add your first one/, 'an empty list says so')

    const row = await userRow(alice.username)
    t.match(row, { username: 'alice', role: 'user' }, 'the user row exists, with role user')
    alice.id = row!.id
    t.equal((await activeSessions()).length, 1, 'registering signed the user in: one session')

    const other = await newProfile(browser)
    const second = await other.newPage()
    await second.goto(`${frontendUrl}#/register`)
    await second.getByLabel('Username').fill('ALICE')
    await second.getByLabel('Password', { exact: true }).fill(alice.password)
    await second.getByLabel('Repeat password').fill(alice.password)
    await second.getByRole('button', { name: 'Create account' }).click()
    t.match(await waitForText(second.getByRole('alert'), 'taken'), /already taken/, 'a taken name, whatever its case')
    await second.goto(`${frontendUrl}#/sign-in`)
    await second.getByLabel('Username').fill(alice.username)
    await second.getByLabel('Password').fill('not-her-password')
    await second.getByRole('button', { name: 'Sign in', exact: true }).click()
    t.match(await waitForText(second.getByRole('alert'), 'match'), /username and password don’t match/, 'a wrong password')
    await other.close()
  })

  await t.test('tasks are created, edited, completed and deleted, and the database agrees', async (t) => {
    const title = page.getByLabel('New task')
    await title.fill('Buy milk')
    await page.getByLabel('Description').fill('Two litres')
    await page.getByRole('button', { name: 'Add task' }).click()
    await task('Buy milk').waitFor()
    t.match(await textOf(task('Buy milk')), /Buy milk Two litres Added/)

    // A title that would run as HTML if the app ever used innerHTML with user data.
    const markup = '<img src=x onerror="window.pwned=1">Call mum'
    await title.fill(markup)
    await page.getByRole('button', { name: 'Add task' }).click()
    await task('Call mum').waitFor()
    t.match(await textOf(task('Call mum').locator('.task-title')), markup, 'markup in a title is shown as text')
    t.equal(await page.evaluate(() => (window as { pwned?: number }).pwned), undefined, 'and never runs')
    t.same((await taskRows()).map((row) => row.title).sort(), [markup, 'Buy milk'].sort(), 'both tasks are stored')

    const milkId = await task('Buy milk').getAttribute('data-id')
    const editing = page.locator(`li[data-id="${milkId}"]`)
    await task('Buy milk').getByRole('button', { name: 'Edit', exact: true }).click()
    await editing.getByLabel('Title').fill('Buy oat milk')
    await editing.getByLabel('Description').fill('One litre')
    await page.getByRole('button', { name: 'Save' }).click()
    await task('Buy oat milk').locator('.task-title').waitFor()
    t.match(await textOf(task('Buy oat milk')), /Buy oat milk One litre/)

    await task('Buy oat milk').getByRole('checkbox').check()
    await waitForText(task('Buy oat milk').locator('.task-meta'), 'Done')
    const [milk] = (await taskRows()).filter((row) => row.title === 'Buy oat milk')
    t.match(milk, { description: 'One litre', done: true }, 'edit and completion are stored')

    await task('Call mum').getByRole('button', { name: 'Delete', exact: true }).click()
    t.match(await textOf(task('Call mum')), /This can’t be undone/, 'deleting asks first')
    await task('Call mum').getByRole('button', { name: 'Delete task' }).click()
    await task('Call mum').waitFor({ state: 'detached' })
    t.same((await taskRows()).map((row) => row.title), ['Buy oat milk'], 'the deleted task is gone from the database')

    await title.fill('Water the plants')
    await page.getByRole('button', { name: 'Add task' }).click()
    await task('Water the plants').waitFor()
    await screenshot(page, 'tasks')
    await page.setViewportSize({ width: 390, height: 844 })
    await screenshot(page, 'tasks-phone')
    await page.setViewportSize({ width: 1100, height: 800 })
  })

  await t.test('a reload keeps the user signed in', async (t) => {
    await page.reload()
    await page.getByRole('heading', { name: 'My tasks' }).waitFor()
    await task('Buy oat milk').waitFor()
    t.match(await textOf(page.locator('.who')), /alice/)
  })

  await t.test('once the access token has expired, the next action refreshes silently and goes through', async (t) => {
    await sleep(PAST_EXPIRY_MS)
    const [session] = await activeSessions()
    const tokensBefore = (await app.db.select().from(refreshTokens).where(eq(refreshTokens.sessionId, session!.id))).length
    const from = seen.length
    await page.getByLabel('New task').fill('After expiry')
    await page.getByRole('button', { name: 'Add task' }).click()
    await task('After expiry').waitFor()
    t.same(apiCalls(from).map((request) => `${request.method} ${request.path} ${request.status}`), [
      'POST /api/tasks 401',
      'POST /api/auth/refresh 200',
      'POST /api/tasks 201',
    ], 'the 401 was followed by one refresh and one retry')
    t.notOk(await page.getByRole('heading', { name: 'Sign in' }).isVisible(), 'the user never saw the sign-in screen')
    const tokensAfter = (await app.db.select().from(refreshTokens).where(eq(refreshTokens.sessionId, session!.id))).length
    t.equal(tokensAfter, tokensBefore + 1, 'the refresh token was rotated')
    t.equal((await activeSessions()).length, 1, 'the same session goes on')
  })

  await t.test('several calls meeting an expired token share one refresh', async (t) => {
    await sleep(PAST_EXPIRY_MS)
    const from = seen.length
    // Three calls at once, as a screen that loads several things would make: all meet a 401.
    const outcome = await page.evaluate(async () => {
      const { request } = await import(new URL('api.js', location.href).href)
      const results = await Promise.all([request('GET', '/api/auth/me'), request('GET', '/api/tasks?limit=1'), request('GET', '/api/auth/sessions')])
      return results.length
    })
    t.equal(outcome, 3)
    t.equal(apiCalls(from, (request) => request.path === '/api/auth/refresh').length, 1, 'one refresh for three calls')
  })

  await t.test('two tabs whose access tokens expired refresh at the same moment, and both stay signed in', async (t) => {
    const otherTab = await profile.newPage()
    const otherTabProblems = watchForPageErrors(otherTab)
    await otherTab.goto(frontendUrl)
    await otherTab.getByRole('heading', { name: 'My tasks' }).waitFor()
    await sleep(PAST_EXPIRY_MS)

    // Hold both refreshes until both tabs have sent theirs, so they present the same refresh token
    // to the API at the same moment: the race the rotation grace exists for.
    const held: Route[] = []
    let releaseBoth = () => {}
    const bothHeld = new Promise<void>((resolve) => { releaseBoth = resolve })
    await profile.route(`${apiOrigin}/api/auth/refresh`, async (route) => {
      held.push(route)
      if (held.length === 2) releaseBoth()
      await bothHeld
      await route.continue()
    })
    const from = seen.length
    await Promise.all([page.reload(), otherTab.reload()])
    await Promise.race([bothHeld, sleep(10_000).then(() => { throw new Error('both tabs did not refresh') })])
    await Promise.all([page, otherTab].map((tab) => tab.getByRole('heading', { name: 'My tasks' }).waitFor()))
    await profile.unrouteAll({ behavior: 'wait' })

    const refreshes = apiCalls(from, (request) => request.path === '/api/auth/refresh')
    t.same(refreshes.map((request) => request.status), [200, 200], 'both refreshes succeeded')
    t.equal(refreshes.filter((request) => request.setRefreshCookie).length, 1, 'one rotated the token, the other was honoured in the grace period')
    for (const tab of [page, otherTab]) t.match(await textOf(tab.locator('.who')), /alice/, 'each tab is signed in')
    t.equal((await activeSessions()).length, 1, 'the session was not revoked')
    const reuse = await app.db.select().from(auditEvents).where(and(eq(auditEvents.userId, alice.id), eq(auditEvents.type, 'refresh_reused')))
    t.equal(reuse.length, 0, 'no reuse was suspected')

    // And the cookie jar kept a refresh token that still works, in both tabs.
    await sleep(PAST_EXPIRY_MS)
    await otherTab.getByLabel('New task').fill('From the second tab')
    await otherTab.getByRole('button', { name: 'Add task' }).click()
    await task('From the second tab', otherTab).waitFor()
    await page.reload()
    await task('From the second tab').waitFor()
    t.same(otherTabProblems, [], 'no script or CSP errors in the second tab')
    await otherTab.close()
  })

  await t.test('a long list pages with Load more', async (t) => {
    const start = Date.now() - 3_600_000
    await app.db.insert(tasks).values(Array.from({ length: 23 }, (_, i) => ({
      ownerId: alice.id, title: `Old task ${String(i + 1).padStart(2, '0')}`, createdAt: new Date(start + i * 1000),
    })))
    const total = (await taskRows()).length
    await page.reload()
    await task('Buy oat milk').waitFor()
    t.equal(await myTasks().count(), 10, 'a page of ten')
    const more = page.getByRole('button', { name: 'Load more' })
    await more.click()
    await myTasks().nth(19).waitFor()
    t.equal(await myTasks().count(), 20)
    await more.click()
    await myTasks().nth(total - 1).waitFor()
    t.equal(await myTasks().count(), total, 'then all of them')
    await more.waitFor({ state: 'hidden' })
    t.match(await textOf(myTasks().last()), /Old task 01/, 'oldest last')
  })

  for (const [label, host, listenAddress, sharesPartition] of [
    ['on the same site (another port of localhost)', 'localhost', '127.0.0.1', true],
    ['on another site (127.0.0.2)', '127.0.0.2', '127.0.0.2', false],
  ] as const) {
    await t.test(`a page on another origin ${label}, in the same browser, can neither read, write nor sign the user out`, async (t) => {
      const hostile = await startHostileSite(t, apiOrigin, host, listenAddress)
      const tasksBefore = await taskRows()
      const [session] = await activeSessions()
      const evil = await profile.newPage()
      await evil.goto(`${hostile.origin}/`)

      // A fresh access cookie first (it lives two seconds here), so the browser has something to
      // send along if it would.
      await page.evaluate(async () => (await import(new URL('api.js', location.href).href)).refreshSession())
      const from = seen.length
      const outcome = await evil.evaluate(() => (window as unknown as { attack: () => Promise<Record<string, string>> }).attack())
      t.match(outcome.read, /^blocked: TypeError/, 'reading /api/tasks fails: no CORS grant for this origin')
      t.match(outcome.jsonPost, /^blocked: TypeError/, 'a JSON POST fails at the preflight')
      const fromHostile = apiCalls(from, (request) => request.origin === hostile.origin)
      t.same(fromHostile.map((request) => `${request.method} ${request.path} ${request.status}`), [
        // Same site: the cookie came along and the API answered, but the browser kept the answer
        // from the page. Another site: the partitioned cookie stayed home.
        `GET /api/tasks ${sharesPartition ? 200 : 401}`,
        'POST /api/tasks 403',
        'POST /api/auth/refresh 403',
      ], 'no CORS grant on the read, both simple writes refused, the preflighted POST never sent')
      if (sharesPartition) {
        t.ok(fromHostile.every((request) => request.hadRefreshCookie || request.path === '/api/tasks'), 'the refresh cookie came along')
        t.ok(fromHostile.filter((request) => request.path === '/api/tasks').every((request) => request.hadAccessCookie),
          'the access cookie came along: only CORS and the Origin check stood in the way')
      } else {
        t.comment(`cookies sent from another site: ${JSON.stringify(fromHostile.map((request) => request.hadAccessCookie || request.hadRefreshCookie))} (Partitioned keeps them to the frontend's site)`)
      }
      t.same(await taskRows(), tasksBefore, 'no task was created')

      const navigation = evil.waitForResponse(`${apiOrigin}/api/auth/logout`)
      await evil.getByRole('button', { name: 'Claim' }).click()
      const answer = await navigation
      t.equal(answer.status(), 403, 'the form POST to /api/auth/logout is refused')
      t.match(await answer.json(), { code: 'CSRF_ORIGIN' })
      const [after] = await app.db.select().from(sessions).where(eq(sessions.id, session!.id))
      t.equal(after!.revokedAt, null, 'the session is not revoked')
      await evil.close()

      await page.getByLabel('New task').fill(`Still here after ${host}`)
      await page.getByRole('button', { name: 'Add task' }).click()
      await task(`Still here after ${host}`).waitFor()
      t.pass('the frontend tab still works')
    })
  }

  await t.test('an admin sees every user, changes a role and deletes a user', async (t) => {
    for (const username of ['bob', 'carol']) {
      const response = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username, password: STRONG_PASSWORD } })
      t.equal(response.statusCode, 201)
    }
    t.notOk(await page.getByRole('link', { name: 'Users' }).isVisible(), 'no Users page for a user')
    await promote(app, alice.id)
    await page.reload()
    await page.getByRole('link', { name: 'Users' }).click()
    await page.getByRole('heading', { name: 'Users' }).waitFor()
    const people = page.getByRole('list', { name: 'Users' }).getByRole('listitem')
    await people.filter({ hasText: 'carol' }).waitFor()
    t.equal(await people.count(), 3)
    t.match(await textOf(people.filter({ hasText: 'alice' })), /alice\s*You/, 'the admin is marked as themselves')
    await screenshot(page, 'admin-users')

    await page.getByLabel('Role of bob').selectOption('admin')
    t.equal((await userRow('bob'))!.role, 'user', 'picking a role only asks')
    await page.getByRole('button', { name: 'Change role' }).click()
    await waitForText(notice(), 'bob is now an admin')
    t.equal((await userRow('bob'))!.role, 'admin', 'the new role is stored')

    const carol = people.filter({ hasText: 'carol' })
    await carol.getByRole('button', { name: 'Delete', exact: true }).click()
    await carol.getByRole('button', { name: 'Delete user' }).click()
    await waitForText(notice(), 'carol was deleted')
    t.equal(await people.count(), 2)
    t.equal(await userRow('carol'), undefined, 'carol is gone from the database')
  })

  await t.test('changing the password signs out the other devices, and sign out everywhere ends them all', async (t) => {
    const laptop: BrowserContext = await newProfile(browser)
    const laptopPage = await laptop.newPage()
    await signInThroughForm(laptopPage, frontendUrl, alice.username, alice.password)
    t.equal((await activeSessions()).length, 2)

    await page.getByRole('link', { name: 'Account' }).click()
    await page.getByRole('heading', { name: 'Account' }).waitFor()
    const sessionList = page.getByRole('list', { name: 'Active sessions' }).getByRole('listitem')
    await sessionList.nth(1).waitFor()
    t.match(await textOf(sessionList.filter({ hasText: 'This device' })), /Chrom/, 'the sessions list names this device')
    // The account page also asks for the current password in its two-step card: this form only.
    const passwordForm = page.locator('form').filter({ has: page.getByRole('button', { name: 'Change password' }) })
    await passwordForm.getByLabel('Current password').fill('wrong-password-1')
    await passwordForm.getByLabel('New password', { exact: true }).fill(newPassword)
    await passwordForm.getByLabel('Repeat new password').fill(newPassword)
    await passwordForm.getByRole('button', { name: 'Change password' }).click()
    t.match(await waitForText(page.getByRole('alert'), 'current'), /current password isn’t right/)
    await passwordForm.getByLabel('Current password').fill(alice.password)
    await passwordForm.getByLabel('New password', { exact: true }).fill(newPassword)
    await passwordForm.getByLabel('Repeat new password').fill(newPassword)
    await passwordForm.getByRole('button', { name: 'Change password' }).click()
    await waitForText(notice(), 'Password changed')
    t.equal((await activeSessions()).length, 1, 'only this session is left')
    await screenshot(page, 'account')

    await laptopPage.reload()
    await laptopPage.getByRole('heading', { name: 'Sign in' }).waitFor()
    t.pass('the other device is back at the sign-in screen')
    await signInThroughForm(laptopPage, frontendUrl, alice.username, newPassword)

    await page.getByRole('button', { name: 'Sign out everywhere' }).click()
    await page.getByRole('heading', { name: 'Sign in' }).waitFor()
    t.match(await textOf(notice()), /signed out on all your devices/)
    t.equal((await activeSessions()).length, 0, 'every session is revoked')
    await laptopPage.getByLabel('New task').fill('too late')
    await laptopPage.getByRole('button', { name: 'Add task' }).click()
    await laptopPage.getByRole('heading', { name: 'Sign in' }).waitFor()
    t.match(await textOf(notice(laptopPage)), /session has ended/, 'the other device is told its session ended')
    await laptop.close()
  })

  await t.test('signing out ends the session, and a reload stays signed out', async (t) => {
    await signInThroughForm(page, frontendUrl, alice.username, newPassword)
    const [session] = await activeSessions()
    await page.getByRole('button', { name: 'Sign out', exact: true }).click()
    await page.getByRole('heading', { name: 'Sign in' }).waitFor()
    t.match(await textOf(notice()), /You have signed out/)
    const [after] = await app.db.select().from(sessions).where(eq(sessions.id, session!.id))
    t.not(after!.revokedAt, null, 'the session row is revoked')
    await page.reload()
    await page.getByRole('heading', { name: 'Sign in' }).waitFor()
    t.notOk(await page.locator('.who').isVisible(), 'nobody is signed in')
    t.same(problems, [], 'no script or CSP errors on the way')
  })

  await t.test('the mirror layout works too: the page on 127.0.0.1 calls the API on localhost', async (t) => {
    const mirror = await newProfile(browser)
    const mirrorPage = await mirror.newPage()
    const mirrorProblems = watchForPageErrors(mirrorPage)
    await mirrorPage.goto(`${mirrorFrontendUrl}#/sign-in`)
    await mirrorPage.getByLabel('Username').fill(alice.username)
    await mirrorPage.getByLabel('Password').fill(newPassword)
    await mirrorPage.getByRole('button', { name: 'Sign in', exact: true }).click()
    await task('Buy oat milk', mirrorPage).waitFor()
    t.match(await textOf(mirrorPage.locator('.who')), /alice/)
    t.same(mirrorProblems, [], 'no script or CSP errors')
    await mirror.close()
  })
})
