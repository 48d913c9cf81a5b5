import t from 'tap'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { simpleParser } from 'mailparser'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { buildTestApp, LogCapture, openTestDatabase, STRONG_PASSWORD, testConfig, uniqueName } from './helpers/app.js'

const STRONG = 'x'.repeat(48)
const PRODUCTION = {
  NODE_ENV: 'production',
  JWT_SECRET: STRONG,
  ENCRYPTION_KEY: STRONG,
  CORS_ORIGINS: 'https://app.example.com',
  PUBLIC_ORIGIN: 'https://api.example.com',
}

function refusal (env: Record<string, string>): string | undefined {
  try {
    loadConfig({ DATA_DIR: 'memory://', ...env })
    return undefined
  } catch (error) {
    return (error as Error).message
  }
}

t.test('SMTP_URL and MAIL_FROM are checked at start, naming the variable', async (t) => {
  t.match(refusal({ SMTP_URL: 'not a url' }), /^Invalid configuration: SMTP_URL/)
  t.match(refusal({ SMTP_URL: 'http://mail.example.com' }), /SMTP_URL must start with smtp:\/\/ or smtps:\/\//)
  t.match(refusal({ MAIL_FROM: 'nobody' }), /^Invalid configuration: MAIL_FROM/)
  t.match(refusal({ MAIL_FROM: 'a@b.c\r\nBcc: victim@example.com' }), /MAIL_FROM/, 'no header injection')
  t.match(refusal({ ...PRODUCTION, SMTP_URL: 'smtps://user:pass@mail.example.com:465' }), /MAIL_FROM must be set with SMTP_URL/)
  const config = loadConfig({ DATA_DIR: 'memory://', ...PRODUCTION, SMTP_URL: 'smtp://mail.example.com:587', MAIL_FROM: 'Tasks <no-reply@example.com>' })
  t.match(config, { mailEnabled: true, mailFrom: 'Tasks <no-reply@example.com>' })
  t.equal(loadConfig({ DATA_DIR: 'memory://', ...PRODUCTION }).mailEnabled, false, 'production without SMTP_URL: no e-mail features')
  t.equal(loadConfig({ DATA_DIR: 'memory://' }).mailEnabled, true, 'development: the outbox folder')
})

t.test('without mail (production without SMTP_URL) the e-mail routes do not exist and register refuses an address', async (t) => {
  const app = await buildTestApp(t, { mailEnabled: false })
  for (const url of ['/api/auth/email', '/api/auth/email/verify', '/api/auth/password/forgot', '/api/auth/password/reset']) {
    t.equal((await app.inject({ method: 'POST', url, payload: {} })).statusCode, 404, url)
  }
  const withAddress = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username: uniqueName(), password: STRONG_PASSWORD, email: 'a@example.test' } })
  t.equal(withAddress.statusCode, 400)
  t.equal(withAddress.json().code, 'EMAIL_DISABLED')
  const without = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username: uniqueName(), password: STRONG_PASSWORD } })
  t.equal(without.statusCode, 201)
})

t.test('development without SMTP_URL: mails land in DATA_DIR/outbox as .eml files, their links in the log', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'cookie-auth-outbox-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const { database } = await openTestDatabase(t)
  await database.migrate()
  const logs = new LogCapture()
  const app = await buildApp({ config: testConfig({ dataDir }), database, logStream: logs, logLevel: 'info', pressure: { maxEventLoopDelay: 0 } })
  t.teardown(() => app.close())
  const email = 'dev.person@example.test'
  const registered = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username: uniqueName(), password: STRONG_PASSWORD, email } })
  t.equal(registered.statusCode, 201)
  await app.mailer.idle()
  const files = await readdir(join(dataDir, 'outbox'))
  t.equal(files.length, 1)
  t.match(files[0], /verify_email.*\.eml$/)
  const eml = await simpleParser(await readFile(join(dataDir, 'outbox', files[0]!)))
  t.match(eml.to, { text: email })
  const token = /verify-email\?token=([A-Za-z0-9_-]+)/.exec(eml.text ?? '')?.[1]
  t.ok(token, 'the file holds the link')
  const line = logs.lines.find((entry) => entry.includes('development outbox'))
  t.ok(line?.includes(`#/verify-email?token=${token!}`), 'the link is logged')
  t.notOk(logs.lines.filter((entry) => entry !== line).some((entry) => entry.includes(token!) || entry.includes(email)), 'nowhere else')
  const verified = await app.inject({ method: 'POST', url: '/api/auth/email/verify', payload: { token } })
  t.equal(verified.json().user.email, email)
})
