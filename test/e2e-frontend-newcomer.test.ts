import t from 'tap'
import { eq } from 'drizzle-orm'
import type { Page } from 'playwright-core'
import { users } from '../src/db/schema.js'
import { signIn, STRONG_PASSWORD } from './helpers/app.js'
import {
  CHROMIUM, hasChromium, launchChromium, newProfile, signInThroughForm, startStack, textOf, waitForText, watchForPageErrors,
} from './helpers/e2e-browser.js'
import { toolSkip } from './helpers/tools.js'

// What a newcomer meets in the first hour with the example frontend: it follows the API's port (the
// stack takes free ports), a signed-out load is quiet, a keyboard user keeps their place, and a role
// changes only after a yes.
const skip = toolSkip(t, CHROMIUM, hasChromium(), 'apt-get install chromium; .ci/run does it')

/** What has the focus: its tag, label and text, enough to tell the controls apart. */
const focused = (page: Page) => page.evaluate(() => {
  const element = document.activeElement as HTMLElement | null
  if (element === null) return ''
  const label = element.getAttribute('aria-label') ?? element.getAttribute('name')
  return [element.tagName.toLowerCase(), label, element.textContent].filter((part) => part !== null && part !== '').join(' ')
})

t.test('the example frontend on a free port, with the keyboard', { skip }, async (t) => {
  const { app, seen, frontendUrl } = await startStack(t)
  const browser = await launchChromium(t)
  const admin = await signIn(app, 'root', 'admin')
  await signIn(app, 'bob')

  const profile = await newProfile(browser)
  const page = await profile.newPage()
  const problems = watchForPageErrors(page)
  const consoleErrors: string[] = []
  page.on('console', (message) => { if (message.type() === 'error') consoleErrors.push(message.text()) })

  await t.test('a signed-out first load asks for no session and logs no error', async (t) => {
    await page.goto(frontendUrl)
    await page.getByRole('heading', { name: 'Sign in' }).waitFor()
    t.same(seen.filter((request) => /^\/api\/auth\/(me|refresh)\b/.test(request.path)), [], 'no /me, no /refresh')
    t.same(consoleErrors, [], 'no red 401s in the console')
  })

  await t.test('a failed sign-in leaves the password selected, ready to retype', async (t) => {
    await page.getByLabel('Username').fill(admin.username)
    await page.getByLabel('Password').fill('not-the-password')
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    await waitForText(page.getByRole('alert'), 'don’t match')
    t.equal(await focused(page), 'input password')
    t.equal(await page.getByLabel('Password').evaluate((input: HTMLInputElement) => input.value.slice(input.selectionStart ?? 0, input.selectionEnd ?? 0)), 'not-the-password', 'the whole password is selected')
    t.equal(await page.locator('#notice').isVisible(), false, 'the error shows once, in the form')
  })

  await t.test('the focus stays on the checkbox after a toggle', async (t) => {
    await signInThroughForm(page, frontendUrl, admin.username, STRONG_PASSWORD)
    await page.getByLabel('New task').fill('Water the plants')
    await page.keyboard.press('Enter')
    const item = page.getByRole('list', { name: 'Tasks' }).getByRole('listitem').filter({ hasText: 'Water the plants' })
    await item.waitFor()

    await item.getByRole('checkbox').focus()
    await page.keyboard.press('Space')
    await waitForText(item.locator('.task-meta'), 'Done')
    t.equal(await focused(page), 'input Done: Water the plants', 'after a toggle: the same checkbox')
  })

  await t.test('the focus returns to Edit after a save or a cancel, and to Delete after "Keep it"', async (t) => {
    // The first task: while it is a form, its title is an input's value, which no text filter sees.
    const item = page.getByRole('list', { name: 'Tasks' }).getByRole('listitem').first()
    await item.getByRole('button', { name: 'Edit' }).click()
    t.equal(await focused(page), 'input title', 'the form opens on its title')
    await page.keyboard.press('Escape')
    await item.getByRole('button', { name: 'Edit' }).waitFor()
    t.equal(await focused(page), 'button Edit', 'after Escape (cancel): Edit')

    await item.getByRole('button', { name: 'Edit' }).click()
    await item.getByRole('button', { name: 'Cancel' }).click()
    t.equal(await focused(page), 'button Edit', 'after Cancel: Edit')

    await item.getByRole('button', { name: 'Edit' }).click()
    await page.getByLabel('Title', { exact: true }).fill('Water the plants twice')
    await page.keyboard.press('Enter')
    const renamed = item.filter({ hasText: 'Water the plants twice' })
    await renamed.getByRole('button', { name: 'Edit' }).waitFor()
    t.equal(await focused(page), 'button Edit', 'after a save: Edit')

    await renamed.getByRole('button', { name: 'Delete' }).click()
    t.equal(await focused(page), 'button Keep it', 'the confirmation opens on its safe choice')
    await page.keyboard.press('Enter')
    await renamed.getByRole('button', { name: 'Delete' }).waitFor()
    t.equal(await focused(page), 'button Delete', 'after "Keep it": Delete')
  })

  await t.test('input borders and the focus ring stand out at least 3:1', async (t) => {
    const ratios = await page.evaluate(() => {
      const luminance = (color: string) => {
        const [r, g, b] = (color.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map(Number).map((value) => {
          const channel = value / 255
          return channel <= 0.03928 ? channel / 12.92 : ((channel + 0.055) / 1.055) ** 2.4
        })
        return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!
      }
      const contrast = (a: string, b: string) => {
        const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x)
        return (light! + 0.05) / (dark! + 0.05)
      }
      const input = document.querySelector<HTMLInputElement>('input[name="title"]')!
      const card = getComputedStyle(input.closest('.card')!).backgroundColor
      const border = contrast(getComputedStyle(input).borderTopColor, card)
      input.focus()
      const ring = contrast(getComputedStyle(input).outlineColor, card)
      return { border, ring }
    })
    t.ok(ratios.border >= 3, `input border ${ratios.border.toFixed(2)}:1`)
    t.ok(ratios.ring >= 3, `focus ring ${ratios.ring.toFixed(2)}:1`)
  })

  await t.test('a role changes only after a confirmation', async (t) => {
    await page.getByRole('link', { name: 'Users' }).click()
    const role = page.getByLabel('Role of bob')
    await role.selectOption('admin')
    t.match(await textOf(page.getByRole('group', { name: 'Change role' })), /Make bob an admin\?/)
    const roleOf = async () => (await app.db.select({ role: users.role }).from(users).where(eq(users.username, 'bob')))[0]?.role
    t.equal(await roleOf(), 'user', 'nothing changed by picking')
    await page.getByRole('button', { name: 'Cancel' }).click()
    t.equal(await role.inputValue(), 'user', 'cancel puts the old role back')
    await role.selectOption('admin')
    await page.getByRole('button', { name: 'Change role' }).click()
    await waitForText(page.getByRole('status'), 'bob is now an admin')
    t.equal(await roleOf(), 'admin')
  })

  t.same(problems, [], 'no script or CSP errors')
})

t.test('the page tells an origin the API refuses (CORS) from an API that is down', { skip }, async (t) => {
  // The API allows some other frontend, not this page: its answers are unreadable here.
  const { app, frontendUrl } = await startStack(t, { corsOrigins: ['https://app.example.com'] })
  const browser = await launchChromium(t)
  const page = await (await newProfile(browser)).newPage()
  const signInFails = async () => {
    await page.goto(frontendUrl)
    await page.getByLabel('Username').fill('someone')
    await page.getByLabel('Password').fill('whatever-password')
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    return textOf(page.getByRole('alert'))
  }

  t.match(await signInFails(), /up but refuses this page’s address.*CORS_ORIGINS/, 'the API answered: the message names CORS_ORIGINS')
  await app.close()
  const down = await signInFails()
  t.match(down, /Can’t reach the server/, 'the API is gone: a network message')
  t.notMatch(down, /CORS_ORIGINS/, 'which does not send the user after the wrong setting')
})
