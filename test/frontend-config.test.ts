import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { configScript, developmentApi, indexHtml, pageCsp, SAME_ORIGIN } from '../src/frontend-config.js'
import { frontendRoot, startFrontend } from '../src/frontend-server.js'
import { projectRoot } from '../src/paths.js'
import { freePort, killServer, startServer, waitUntil } from './helpers/server-process.js'

// Where the page finds the API is said once (src/frontend-config.ts): config.js and the CSP agree.
const committed = (file: string) => readFileSync(join(frontendRoot(), file), 'utf8')

t.test('the committed config.js and index.html are the generated same-origin pair', async (t) => {
  t.equal(committed('config.js'), configScript(SAME_ORIGIN))
  t.equal(committed('index.html'), indexHtml(committed('index.html'), SAME_ORIGIN), 'the CSP in index.html is pageCsp()')
  t.match(committed('index.html'), /connect-src 'self';/)
})

t.test('the development server serves config.js and the CSP for the API it was given', async (t) => {
  const port = await freePort()
  const server = await startFrontend(port, 'localhost', developmentApi('127.0.0.1', 9123))
  t.teardown(() => server.close())
  const script = await (await fetch(`http://localhost:${port}/config.js`)).text()
  t.match(script, /"localhost":"http:\/\/127\.0\.0\.1:9123"/)
  t.match(script, /"127\.0\.0\.1":"http:\/\/localhost:9123"/)
  for (const path of ['/', '/index.html']) {
    const page = await fetch(`http://localhost:${port}${path}`)
    const csp = page.headers.get('content-security-policy') ?? ''
    t.match(csp, /connect-src 'self' http:\/\/127\.0\.0\.1:9123 http:\/\/localhost:9123;/, `${path}: header`)
    t.ok((await page.text()).includes(pageCsp(developmentApi('127.0.0.1', 9123))), `${path}: meta tag`)
  }
  t.equal((await fetch(`http://localhost:${port}/styles.css`)).status, 200, 'the other files as they are')
})

t.test('`npm run frontend -- build` writes a copy that calls the API on another origin', async (t) => {
  const out = join(mkdtempSync(join(tmpdir(), 'frontend-build-')), 'site')
  t.teardown(() => rmSync(join(out, '..'), { recursive: true, force: true }))
  // As `npm run frontend -- build` runs it: the build first (which copies the browser modules out
  // of node_modules), then the compiled command through the `dist` link.
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: projectRoot(), stdio: 'pipe', timeout: 150_000 })
  execFileSync(process.execPath, ['dist/src/cli/frontend.js', 'build', out, '--api', 'https://api.example.com'], { cwd: projectRoot(), stdio: 'pipe', timeout: 60_000 })
  t.equal(readFileSync(join(out, 'config.js'), 'utf8'), configScript({ origin: 'https://api.example.com' }))
  t.ok(existsSync(join(out, 'vendor', 'simplewebauthn', 'index.js')), 'with the passkey library the page imports')
  t.match(readFileSync(join(out, 'index.html'), 'utf8'), /connect-src 'self' https:\/\/api\.example\.com;/)
  t.equal(readFileSync(join(out, 'app.js'), 'utf8'), committed('app.js'), 'everything else copied as is')
  let status = 0
  try {
    execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/frontend.ts', 'build', out, '--api', 'https://api.example.com/v1'], { stdio: 'pipe', timeout: 60_000 })
  } catch (error) {
    status = (error as { status: number }).status
  }
  t.equal(status, 1, 'an API address with a path is refused')
})

t.test('a start whose CORS_ORIGINS leaves out the example frontend says so, naming the variable', async (t) => {
  const frontendPort = await freePort()
  const server = await startServer({ DATA_DIR: 'memory://', FRONTEND_PORT: String(frontendPort), CORS_ORIGINS: 'http://localhost:1' })
  t.teardown(() => killServer(server))
  // The frontend starts after the API listens, and the warning follows its start (10 s at most).
  const warning = new RegExp(`CORS_ORIGINS does not list http://localhost:${frontendPort}.*add it to CORS_ORIGINS`)
  await waitUntil(() => warning.test(server.output()), 'the warning naming CORS_ORIGINS')
  t.match(server.output(), warning)
})
