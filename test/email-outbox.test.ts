import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { eq, isNull, sql } from 'drizzle-orm'
import { buildApp } from '../src/app.js'
import { openDatabase } from '../src/db/client.js'
import { enqueueMail } from '../src/db/queries/mail-outbox.js'
import { purgeEndedRows } from '../src/db/queries/purge.js'
import { mailOutbox } from '../src/db/schema.js'
import { freshDatabaseUrl, STRONG_PASSWORD, testConfig, uniqueName } from './helpers/app.js'
import { HttpClient } from './helpers/http-client.js'
import { killServer, startServer, waitUntil } from './helpers/server-process.js'
import { TestSmtpServer } from './helpers/smtp.js'

// One database and one mail server for the file; the apps below share them.
const smtp = await TestSmtpServer.start()
t.teardown(() => smtp.stop())
const databaseUrl = await freshDatabaseUrl(t)
const database = await openDatabase({ databaseUrl, dataDir: 'memory://' })
t.teardown(() => database.close())
await database.migrate()

// Instances of one deployment share ENCRYPTION_KEY (it seals the outbox's bodies).
const encryptionKey = testConfig().encryptionKey

/** An app instance on the shared database: its own pool on Postgres, the same PGlite otherwise. */
async function instance () {
  const config = testConfig({ databaseUrl, smtpUrl: smtp.url, migrateOnStart: false, encryptionKey })
  const app = await buildApp({
    config,
    ...(databaseUrl === undefined ? { database } : {}),
    pressure: { maxEventLoopDelay: 0 },
    // Polls often so that the test never waits on a timer; retries are moved forward by the test.
    mail: { pollMs: 100, retryBaseSeconds: 3600 },
  })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

async function queue (app: Awaited<ReturnType<typeof instance>>, count: number, prefix: string): Promise<string[]> {
  const addresses = Array.from({ length: count }, (_, i) => `${prefix}${i}@example.test`)
  await app.db.transaction(async (tx) => {
    for (const to of addresses) await enqueueMail(tx, app.secretBox, { to, subject: `hello ${to}`, text: 'text', html: '<p>html</p>', kind: 'test' })
  })
  return addresses
}

const receivedBy = (to: string) => smtp.received.filter((mail) => mail.to === to).length

t.test('two instances on one database and one mail server: every mail once, none twice', async (t) => {
  const [first, second] = [await instance(), await instance()]
  const addresses = await queue(first, 30, 'pair')
  for (let i = 0; i < 5; i++) { first.mailer.wake(); second.mailer.wake() }
  for (const to of addresses) await smtp.waitFor(to)
  await Promise.all([first.mailer.idle(), second.mailer.idle()])
  first.mailer.wake(); second.mailer.wake()
  await Promise.all([first.mailer.idle(), second.mailer.idle()])
  t.same(addresses.filter((to) => receivedBy(to) !== 1), [], 'each of the 30 arrived exactly once')
  const unsent = await first.db.select({ id: mailOutbox.id }).from(mailOutbox).where(isNull(mailOutbox.sentAt))
  t.equal(unsent.length, 0, 'all marked sent')
  await Promise.all([first.close(), second.close()])
})

t.test('a batch that outlives its lease: the mails another instance claimed meanwhile are sent by it alone', async (t) => {
  const first = await instance()
  smtp.hold()
  // Ten mails in one commit, so that one claim takes them all; the first is due a second before the
  // others, so it is the one in flight while the server holds it.
  const inFlight = 'slow-first@example.test'
  const rest = Array.from({ length: 9 }, (_, i) => `slow-rest${i}@example.test`)
  await first.db.transaction(async (tx) => {
    for (const to of [inFlight, ...rest]) await enqueueMail(tx, first.secretBox, { to, subject: `hello ${to}`, text: 'text', html: '<p>html</p>', kind: 'test' })
    await tx.update(mailOutbox).set({ dueAt: sql`now() - interval '1 second'` }).where(eq(mailOutbox.to, inFlight))
  })
  first.mailer.wake()
  await smtp.nextHeld()
  const claimedAtOnce = await first.db.select({ attempts: mailOutbox.attempts }).from(mailOutbox).where(sql`${mailOutbox.to} like 'slow-%'`)
  t.ok(claimedAtOnce.every((row) => row.attempts === 1), 'the first instance claimed all ten in one batch')
  // Two minutes pass while the first send crawls: the batch's other leases run out (moved, not
  // waited for), and a second instance starts and claims those mails again.
  await first.db.update(mailOutbox).set({ claimedUntil: sql`now()` }).where(sql`${mailOutbox.to} like 'slow-rest%'`)
  const second = await instance()
  const reclaimed = async () => (await first.db.select({ attempts: mailOutbox.attempts }).from(mailOutbox)
    .where(sql`${mailOutbox.to} like 'slow-rest%'`)).every((row) => row.attempts === 2)
  await waitUntil(reclaimed, 'the second instance claimed the rest')
  smtp.release()
  for (const to of [inFlight, ...rest]) await smtp.waitFor(to)
  await Promise.all([first.mailer.idle(), second.mailer.idle()])
  t.same([inFlight, ...rest].filter((to) => receivedBy(to) !== 1), [], 'each of the 10 arrived exactly once')
  await Promise.all([first.close(), second.close()])
})

t.test('the mail server down for a while, then up: every mail arrives, once', async (t) => {
  const app = await instance()
  await smtp.down()
  const addresses = await queue(app, 5, 'outage')
  app.mailer.wake()
  await app.mailer.idle()
  const failed = await app.db.select({ attempts: mailOutbox.attempts, lastError: mailOutbox.lastError }).from(mailOutbox).where(sql`${mailOutbox.to} like 'outage%'`)
  t.ok(failed.every((row) => row.attempts === 1 && row.lastError !== null), 'each attempt failed and was recorded')
  const metrics = await app.metrics.registry.getSingleMetricAsString('auth_mails_failed_total')
  t.match(metrics, /auth_mails_failed_total 5/)
  t.match(await app.metrics.registry.getSingleMetricAsString('auth_mails_waiting'), /auth_mails_waiting 5/)
  await smtp.up()
  // The backoff would wait an hour: move the retries to now instead of waiting.
  await app.db.update(mailOutbox).set({ dueAt: sql`now()` }).where(isNull(mailOutbox.sentAt))
  app.mailer.wake()
  for (const to of addresses) await smtp.waitFor(to)
  app.mailer.wake()
  await app.mailer.idle()
  t.same(addresses.map(receivedBy), [1, 1, 1, 1, 1])
  t.match(await app.metrics.registry.getSingleMetricAsString('auth_mails_waiting'), /auth_mails_waiting 0/)
  await app.close()
})

t.test('a mail the server refuses for good (5xx) is given up at once, its body dropped, and the rest go on', async (t) => {
  const app = await instance()
  const refused = `no-such-mailbox.${Date.now()}@example.test`
  smtp.refuse(refused)
  const [fine] = await queue(app, 1, `after-refusal.${Date.now()}.`)
  await app.db.transaction((tx) => enqueueMail(tx, app.secretBox, { to: refused, subject: 'hello', text: 'text', html: '<p>html</p>', kind: 'test' }))
  app.mailer.wake()
  await smtp.waitFor(fine!)
  await app.mailer.idle()
  const row = async () => (await app.db.select().from(mailOutbox).where(eq(mailOutbox.to, refused)))[0]!
  const given = await row()
  t.equal(given.attempts, 1, 'tried once')
  t.ok(given.gaveUpAt !== null, 'given up')
  t.equal(given.sentAt, null, 'never marked sent')
  t.match(given.lastError, /550/, "the server's answer is recorded")
  t.same([given.text, given.html], ['', ''], 'the body is not kept for a mail that will never go')
  // Later rounds leave it alone, even with its due time in the past.
  await app.db.update(mailOutbox).set({ dueAt: sql`now()` }).where(eq(mailOutbox.to, refused))
  app.mailer.wake()
  await app.mailer.idle()
  t.equal((await row()).attempts, 1, 'not tried again')
  t.equal(receivedBy(refused), 0)
  t.equal(receivedBy(fine!), 1, 'the other mail went out')
  await app.close()
})

t.test('SIGKILL while a mail is being sent: it goes out after the restart', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'cookie-auth-mail-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const childUrl = await freshDatabaseUrl(t)
  const env = { SMTP_URL: smtp.url, DATA_DIR: dataDir, DATABASE_URL: childUrl ?? '' }
  const first = await startServer(env)
  t.teardown(() => killServer(first))
  const email = `killed.${Date.now()}@example.test`
  smtp.hold()
  const registered = await new HttpClient(first.url).request('POST', '/api/auth/register', { username: uniqueName('kill'), password: STRONG_PASSWORD, email })
  t.equal(registered.status, 201, 'committed')
  await smtp.nextHeld()
  first.child.kill('SIGKILL')
  await first.exited
  smtp.dropHeld()
  t.equal(receivedBy(email), 0, 'nothing arrived: the server died mid-send')

  // The dead instance's lease would run out in two minutes: move it instead of waiting.
  const direct = await openDatabase({ databaseUrl: childUrl, dataDir })
  const [claimed] = await direct.db.update(mailOutbox).set({ claimedUntil: sql`now()` }).where(eq(mailOutbox.to, email)).returning({ attempts: mailOutbox.attempts, sentAt: mailOutbox.sentAt })
  t.match(claimed, { attempts: 1, sentAt: null }, 'claimed once, not sent')
  await direct.close()

  const second = await startServer(env)
  t.teardown(() => killServer(second))
  const [mail] = await smtp.waitFor(email)
  t.match(mail!.subject, /confirm your e-mail address/)
  second.child.kill('SIGTERM')
  t.equal((await second.exited).code, 0, 'a clean stop with the sender running')
  t.equal(receivedBy(email), 1, 'exactly once')
})

t.test('the purge removes outbox rows sent more than a day ago, and keeps the rest', async (t) => {
  const db = database.db
  const app = await instance()
  await app.close()
  // Queued with no sender running, so it is still waiting at the purge.
  const waiting = 'purge-waiting@example.test'
  await enqueueMail(db, app.secretBox, { to: waiting, subject: 'waiting', text: 'text', html: '<p>html</p>', kind: 'test' })
  const sent = await db.select({ id: mailOutbox.id }).from(mailOutbox).where(sql`${mailOutbox.sentAt} is not null`)
  t.ok(sent.length > 0)
  await db.update(mailOutbox).set({ sentAt: sql`now() - interval '2 days'` }).where(sql`${mailOutbox.sentAt} is not null`)
  const result = await purgeEndedRows(db)
  t.equal(result?.mails, sent.length)
  const left = await db.select({ to: mailOutbox.to }).from(mailOutbox)
  t.ok(left.some((row) => row.to === waiting), 'an unsent mail stays')
  t.notOk(left.some((row) => row.to.startsWith('pair')), 'the long-sent ones are gone')
})
