import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import nodemailer, { type Transporter } from 'nodemailer'
import {
  claimDueMails, countWaitingMails, markMailFailed, markMailSent, openMail, renewClaim, type ClaimedMail, type SealedMail,
} from '../src/db/queries/mail-outbox.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The outbox sender of this instance (absent work when the e-mail features are off). */
    mailer: Mailer
  }
  interface FastifyRequest {
    /** Set when the request wrote to the outbox: the sender is woken once the answer is out (after the commit). */
    queuedMail: boolean
  }
}

export interface Mailer {
  /** Looks for due mails now (new ones were committed, or a test moved a timestamp). */
  wake (): void
  /** Resolves once no send round is running (tests wait for the outbox to settle). */
  idle (): Promise<void>
}

export interface MailerOptions {
  /** How often each instance looks for due mails besides being woken. */
  pollMs?: number
  /** First retry delay; doubles per attempt. */
  retryBaseSeconds?: number
}

// A claim outlives any send: each mail's lease is renewed right before its send, and a send that
// has not finished within SEND_DEADLINE_MS is aborted and counts as failed. So a lease runs out
// only when its instance died, and no second instance sends a mail still in flight. (An aborted
// send may still have been accepted by the server: SMTP promises at least once, never exactly once.)
const LEASE_SECONDS = 120
const SEND_DEADLINE_MS = 90_000
const BATCH = 10
// 30 s, 1 min, 2 min … capped at an hour; after 12 attempts (about 5 hours) the mail is given up.
const RETRY_BASE_SECONDS = 30
const RETRY_MAX_SECONDS = 3600
const MAX_ATTEMPTS = 12
const POLL_MS = 5000

/** Nodemailer's SMTP errors carry the server's reply code: a 5xx is a refusal for good. */
function isPermanent (error: unknown): boolean {
  const code = (error as { responseCode?: unknown }).responseCode
  return typeof code === 'number' && code >= 500 && code < 600
}

/** An error's message for the outbox row and the log: the server's words, never the mail. */
function describe (error: unknown): string {
  const { code, responseCode, message } = error as { code?: unknown, responseCode?: unknown, message?: unknown }
  return [code, responseCode, typeof message === 'string' ? message : 'unknown error'].filter((part) => part !== undefined).join(' ')
}

/**
 * The transactional outbox's sender: every instance runs one. It claims due rows (see
 * claimDueMails), sends each through nodemailer, marks it sent or schedules a retry with
 * exponential backoff. Woken after each request that queued a mail, and every few seconds.
 *
 * Without SMTP_URL (development only; production turns the e-mail features off), mails are written
 * to DATA_DIR/outbox/*.eml and their links logged, so a fresh clone shows the whole flow.
 */
export default fp<MailerOptions>(async (app, options) => {
  const { config } = app
  const pollMs = options.pollMs ?? POLL_MS
  const retryBaseSeconds = options.retryBaseSeconds ?? RETRY_BASE_SECONDS
  app.decorateRequest('queuedMail', false)

  if (!config.mailEnabled) {
    app.decorate('mailer', { wake () {}, async idle () {} } satisfies Mailer)
    return
  }

  const outboxDir = config.dataDir.startsWith('memory://') ? undefined : join(config.dataDir, 'outbox')
  const transport: Transporter = config.smtpUrl !== undefined
    ? nodemailer.createTransport({
      url: config.smtpUrl,
      // Bounded, so that a silent server fails an attempt well within the claim's lease.
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    })
    // The same message nodemailer would send, as bytes, for the dev outbox.
    : nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' })

  async function deliver (mail: ClaimedMail): Promise<void> {
    const { to, subject, text, html } = mail
    const info = await transport.sendMail({
      from: config.mailFrom,
      to,
      subject,
      text,
      html,
      // Aborts the SMTP session itself (EABORT), not only the wait: a server that answers a byte at
      // a time never trips the timeouts above, and must not outlive the lease.
      signal: AbortSignal.timeout(SEND_DEADLINE_MS),
    })
    if (config.smtpUrl !== undefined) return
    // The development outbox: the one place a link is logged, so `npm start` shows the whole flow.
    const links = mail.text.match(new RegExp(`${config.appUrl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/#/\\S+`, 'g')) ?? []
    let file: string | undefined
    if (outboxDir !== undefined) {
      await mkdir(outboxDir, { recursive: true, mode: 0o700 })
      file = join(outboxDir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${mail.kind}-${mail.id}.eml`)
      await writeFile(file, (info as unknown as { message: Buffer }).message, { mode: 0o600 })
    }
    app.log.info({ mail: { kind: mail.kind, file, links } }, 'development outbox: mail written (no SMTP_URL)')
  }

  async function sendOne (mail: SealedMail): Promise<void> {
    try {
      // Opened per row: one that this instance's ENCRYPTION_KEY cannot open fails alone.
      await deliver(openMail(app.secretBox, mail))
    } catch (error) {
      const giveUp = isPermanent(error) || mail.attempt >= MAX_ATTEMPTS
      const retryIn = Math.min(RETRY_MAX_SECONDS, retryBaseSeconds * 2 ** (mail.attempt - 1))
      app.metrics.mailsFailed.inc()
      app.log.warn({ mail: { id: mail.id, kind: mail.kind, attempt: mail.attempt }, error: describe(error) },
        giveUp ? 'mail refused for good; giving up' : `mail not sent; retrying in ${retryIn} s`)
      await markMailFailed(app.db, mail.id, mail.attempt, describe(error), retryIn, giveUp)
      return
    }
    app.metrics.mailsSent.inc()
    // Sent but not yet marked (a crash right here) means one more send after the lease: at least
    // once is the only promise SMTP allows; the window is this one update.
    await markMailSent(app.db, mail.id, mail.attempt)
    app.log.info({ mail: { id: mail.id, kind: mail.kind, attempt: mail.attempt } }, 'mail sent')
  }

  let running: Promise<void> | undefined
  // Mails still to send, as the last round found them (the auth_mails_waiting gauge).
  let waiting = 0
  let wakeAgain = false
  let closing = false
  // Read through functions: the flags change while a round awaits, which a loop condition cannot see.
  const isOpen = () => !closing
  async function settled (): Promise<void> {
    for (let round = running; round !== undefined; round = running) await round
  }

  async function drain (): Promise<void> {
    do {
      wakeAgain = false
      let claimed: SealedMail[]
      do {
        claimed = await claimDueMails(app.db, LEASE_SECONDS, BATCH)
        // One at a time: a mail server is happier with a steady trickle than a burst. A mail whose
        // claim was lost meanwhile (this batch outlived its lease) is another instance's now.
        // A closing instance stops between mails: what it leaves is claimed again once the lease ends.
        for (const mail of claimed) {
          if (!isOpen()) break
          if (await renewClaim(app.db, mail.id, mail.attempt, LEASE_SECONDS)) await sendOne(mail)
        }
      } while (claimed.length === BATCH && isOpen())
      waiting = await countWaitingMails(app.db)
      // Checked after the round's last await: a wake that came during the count is not lost.
    } while (wakeAgain && isOpen())
  }

  function wake (): void {
    if (closing) return
    if (running !== undefined) {
      wakeAgain = true
      return
    }
    running = drain()
      // A database outage costs this round; the next wake or poll catches up.
      .catch((error: unknown) => { app.log.warn({ err: error }, 'mail outbox round failed; retrying shortly') })
      .finally(() => { running = undefined })
  }

  const poll = setInterval(wake, pollMs)
  poll.unref()
  // Counted by the sender after each round (at least every poll), never by the scrape itself: the
  // metrics answer without the database, and a scrape never waits behind a busy or absent one.
  app.metrics.setMailsWaitingSource(() => waiting)

  app.decorate('mailer', {
    wake,
    idle: settled,
  } satisfies Mailer)

  // After the answer is sent the handler's transaction has committed: the new mail is there to claim.
  app.addHook('onResponse', async (request: FastifyRequest) => {
    if (request.queuedMail) wake()
  })
  // Mails left by an earlier run (a crash, an outage) go out as soon as the instance is up.
  app.addHook('onReady', async () => { wake() })
  app.addHook('onClose', async () => {
    closing = true
    clearInterval(poll)
    await settled()
    transport.close()
  })
}, { name: 'mailer', dependencies: ['config', 'db', 'auth', 'metrics'] })
