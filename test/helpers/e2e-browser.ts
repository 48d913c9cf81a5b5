import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { createServer as createHttpServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core'
import { buildApp } from '../../src/app.js'
import { frontendOrigins, type Config } from '../../src/config.js'
import { developmentApi } from '../../src/frontend-config.js'
import { startFrontend } from '../../src/frontend-server.js'
import { projectRoot } from '../../src/paths.js'
import { freshDatabaseUrl, openMigratedEmbedded, testConfig, type TestContext } from './app.js'
import { freePort } from './server-process.js'

/** Debian's Chromium, which .ci/run installs (`apt-get install chromium`). */
export const CHROMIUM = '/usr/bin/chromium'
export const hasChromium = () => existsSync(CHROMIUM)

// The development layout that `npm start` serves: the page on localhost, the API on 127.0.0.1, so
// every call is cross-site, as with a real frontend on another domain. Each stack takes free ports,
// so the browser tests run beside a developer's `npm start` and beside each other.
export const SCREENSHOTS = join(projectRoot(), 'test-artifacts', 'screenshots')

/** What reached the API, as seen on its socket: which cookies came along, and the answer. */
export interface SeenRequest {
  method: string
  path: string
  origin: string | undefined
  hadAccessCookie: boolean
  hadRefreshCookie: boolean
  status: number
  /** The answer set a new refresh cookie (a rotation, not a grace answer or a clearing). */
  setRefreshCookie: boolean
}

export interface Stack {
  app: FastifyInstance
  seen: SeenRequest[]
  /** The API as the page on localhost calls it: http://127.0.0.1:<port>. */
  apiOrigin: string
  /** The frontend on localhost: http://localhost:<port>/. */
  frontendUrl: string
  /** The mirror layout: the page on 127.0.0.1, calling the API on localhost. */
  mirrorFrontendUrl: string
}

function cookieNames (header: string | undefined): Set<string> {
  return new Set((header ?? '').split(';').map((part) => part.split('=')[0]!.trim()).filter((name) => name !== ''))
}

/**
 * The real app on a fresh database (Postgres with TEST_DATABASE_URL, else in-memory PGlite),
 * listening on 127.0.0.1, and the example frontend on localhost, each on a free port, both closed at
 * teardown. The frontend is told where the API is the way `npm start` tells it.
 */
export async function startStack (
  t: TestContext, overrides: Partial<Config> = {},
  /** Settings that depend on the ports chosen (an identity provider's callback URL, APP_URL). */
  withPorts: (ports: { apiPort: number, frontendPort: number }) => Promise<Partial<Config>> = async () => ({})
): Promise<Stack> {
  const databaseUrl = await freshDatabaseUrl(t, { migrated: true })
  const database = databaseUrl === undefined ? await openMigratedEmbedded(t) : undefined
  const [apiPort, frontendPort] = [await freePort(), await freePort()]
  const config = testConfig({
    databaseUrl,
    corsOrigins: frontendOrigins(frontendPort),
    // Passkeys: the page on localhost (RP id `localhost`); an IP address is never an RP id.
    webauthnOrigins: [`http://localhost:${frontendPort}`],
    // Not a rate-limit test: every sign-in here comes from the loopback address.
    rateLimitAllowList: ['127.0.0.1', '::1', '::ffff:127.0.0.1'],
    ...overrides,
    ...await withPorts({ apiPort, frontendPort }),
  })
  const app = await buildApp({ config, ...(database === undefined ? {} : { database }) })
  t.teardown(() => app.close())

  const seen: SeenRequest[] = []
  // Listening on the raw server sees every request, whatever plugin encapsulation Fastify applies.
  app.server.on('request', (request, response) => {
    const cookies = cookieNames(request.headers.cookie)
    const entry: SeenRequest = {
      method: request.method ?? '',
      path: request.url ?? '',
      origin: request.headers.origin,
      hadAccessCookie: cookies.has(config.accessCookieName),
      hadRefreshCookie: cookies.has(config.refreshCookieName),
      status: 0,
      setRefreshCookie: false,
    }
    seen.push(entry)
    response.once('finish', () => {
      entry.status = response.statusCode
      const setCookie = [response.getHeader('set-cookie') ?? []].flat().map(String)
      entry.setRefreshCookie = setCookie.some((cookie) => cookie.startsWith(`${config.refreshCookieName}=`) && !/max-age=0/i.test(cookie))
    })
  })

  await app.listen({ port: apiPort, host: '127.0.0.1' })
  const frontend = await startFrontend(frontendPort, 'localhost', developmentApi('127.0.0.1', apiPort))
  t.teardown(() => frontend.close())
  return {
    app,
    seen,
    apiOrigin: `http://127.0.0.1:${apiPort}`,
    frontendUrl: `http://localhost:${frontendPort}/`,
    mirrorFrontendUrl: `http://127.0.0.1:${frontendPort}/`,
  }
}

/** Debian's Chromium, headless, closed at teardown. */
export async function launchChromium (t: TestContext): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: 30_000,
  })
  t.teardown(() => browser.close())
  return browser
}

/** A browser profile (one person's cookie jar) with bounded waits everywhere. */
export async function newProfile (browser: Browser, options: { width?: number, height?: number } = {}): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: options.width ?? 1100, height: options.height ?? 800 } })
  context.setDefaultTimeout(10_000)
  context.setDefaultNavigationTimeout(15_000)
  return context
}

/**
 * Problems a user would not see but a developer must: uncaught exceptions and CSP refusals.
 * (Chromium logs every 4xx answer as "Failed to load resource"; the app expects 401s, so those pass.)
 */
export function watchForPageErrors (page: Page): string[] {
  const problems: string[] = []
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`))
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(`console: ${message.text()}`)
  })
  return problems
}

export async function screenshot (page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true })
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true })
}

const squeeze = (text: string) => text.replace(/\s+/g, ' ').trim()

/** The text a user sees in a locator (as rendered: block elements apart), whitespace squeezed. */
export async function textOf (locator: Locator): Promise<string> {
  await locator.first().waitFor()
  return squeeze(await locator.first().innerText())
}

/** Waits until `locator` shows `expected` (bounded by the context's default timeout). */
export async function waitForText (locator: Locator, expected: string | RegExp): Promise<string> {
  const deadline = Date.now() + 10_000
  let last = ''
  for (;;) {
    last = squeeze(await locator.first().innerText({ timeout: 10_000 }).catch(() => ''))
    if (typeof expected === 'string' ? last.includes(expected) : expected.test(last)) return last
    if (Date.now() > deadline) throw new Error(`expected ${String(expected)}, saw "${last}"`)
    await sleep(50)
  }
}

/** Signs in through the form and waits for the task list. */
export async function signInThroughForm (page: Page, frontendUrl: string, username: string, password: string): Promise<void> {
  await page.goto(`${frontendUrl}#/sign-in`)
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()
  await page.getByLabel('Username').fill(username)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await page.getByRole('heading', { name: 'My tasks' }).waitFor()
}

/**
 * A hostile page: plain HTML served by a tiny server on `host`, which tries, with the visitor's
 * cookies, to read the API, to make it write, and to sign the visitor out with a form.
 */
export async function startHostileSite (t: TestContext, apiOrigin: string, host: string, listenAddress = host): Promise<{ origin: string, server: Server }> {
  const page = `<!doctype html>
<meta charset="utf-8">
<title>You won a prize</title>
<h1>Claim your prize</h1>
<form id="logout" method="post" action="${apiOrigin}/api/auth/logout"><button>Claim</button></form>
<script>
  const api = ${JSON.stringify(apiOrigin)}
  window.attack = async () => {
    const outcome = {}
    try {
      const answer = await fetch(api + '/api/tasks', { credentials: 'include' })
      outcome.read = 'read: ' + await answer.text()
    } catch (error) { outcome.read = 'blocked: ' + error.name }
    try {
      const answer = await fetch(api + '/api/tasks', {
        method: 'POST', credentials: 'include',
        headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ title: 'planted by a hostile page' }),
      })
      outcome.jsonPost = 'status ' + answer.status
    } catch (error) { outcome.jsonPost = 'blocked: ' + error.name }
    // A "simple" request: no preflight, so the browser sends it, cookies and all; only the API's
    // Origin check stands in the way. The answer is opaque to this page either way.
    try {
      await fetch(api + '/api/tasks', {
        method: 'POST', mode: 'no-cors', credentials: 'include',
        headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ title: 'planted by a hostile page' }),
      })
      outcome.simplePost = 'sent'
    } catch (error) { outcome.simplePost = 'blocked: ' + error.name }
    try {
      await fetch(api + '/api/auth/refresh', { method: 'POST', mode: 'no-cors', credentials: 'include' })
      outcome.refresh = 'sent'
    } catch (error) { outcome.refresh = 'blocked: ' + error.name }
    return outcome
  }
</script>`
  const server = createHttpServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    response.end(page)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, listenAddress, resolve)
  })
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  const { port } = server.address() as AddressInfo
  return { origin: `http://${host}:${port}`, server }
}
