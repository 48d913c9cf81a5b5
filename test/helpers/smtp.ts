import { EventEmitter, once } from 'node:events'
import { simpleParser, type ParsedMail } from 'mailparser'
import { SMTPServer } from 'smtp-server'
import { freePort } from './server-process.js'

export interface ReceivedMail {
  readonly to: string
  readonly subject: string
  readonly text: string
  readonly html: string
  readonly raw: ParsedMail
}

/**
 * A real SMTP server on loopback (the `smtp-server` package), for tests: it keeps every mail it
 * accepted, parsed by `mailparser`. It can be stopped and started again on the same port (an
 * outage), and told to hold the next message unanswered (a send in flight when the API dies).
 */
export class TestSmtpServer {
  readonly received: ReceivedMail[] = []
  private readonly events = new EventEmitter()
  private server: SMTPServer | undefined
  private holding = false
  /** Recipients answered 550 at RCPT TO, as a server does for a mailbox that does not exist. */
  private readonly refused = new Set<string>()
  /** Messages held unanswered; released (accepted) by `release()`. */
  private held: Array<() => void> = []

  private constructor (readonly port: number) {}

  static async start (): Promise<TestSmtpServer> {
    const smtp = new TestSmtpServer(await freePort())
    await smtp.up()
    return smtp
  }

  get url (): string { return `smtp://127.0.0.1:${this.port}` }

  async up (): Promise<void> {
    const server = new SMTPServer({
      authOptional: true,
      // Plain SMTP on loopback: no STARTTLS for nodemailer to try, no login to offer.
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onRcptTo: (address, _session, callback) => {
        if (!this.refused.has(address.address.toLowerCase())) return callback()
        callback(Object.assign(new Error('5.1.1 mailbox unavailable'), { responseCode: 550 }))
      },
      onData: (stream, _session, callback) => {
        const chunks: Buffer[] = []
        stream.on('data', (chunk: Buffer) => chunks.push(chunk))
        stream.on('end', () => {
          const accept = () => {
            simpleParser(Buffer.concat(chunks)).then((parsed) => {
              const to = [parsed.to ?? []].flat().flatMap((address) => address.value.map((one) => one.address ?? '')).join(',')
              const mail = { to, subject: parsed.subject ?? '', text: parsed.text ?? '', html: typeof parsed.html === 'string' ? parsed.html : '', raw: parsed }
              this.received.push(mail)
              callback()
              this.events.emit('mail', mail)
            }, (error: Error) => callback(error))
          }
          if (this.holding) {
            this.held.push(accept)
            this.events.emit('held')
          } else {
            accept()
          }
        })
      },
    })
    server.on('error', () => {})
    await new Promise<void>((resolve, reject) => {
      server.listen(this.port, '127.0.0.1', () => resolve())
      server.once('error', reject)
    })
    this.server = server
  }

  /** Stops listening and drops every connection: the mail server is down. */
  async down (): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server === undefined) return
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  /** From now on, mail to `address` is refused for good (550), as for a mailbox that does not exist. */
  refuse (address: string): void { this.refused.add(address.toLowerCase()) }

  /** From now on, a message's data is received but not answered until `release()`. */
  hold (): void { this.holding = true }

  /** Resolves when a message is being held. */
  async nextHeld (): Promise<void> {
    if (this.held.length > 0) return
    await once(this.events, 'held')
  }

  /** Forgets the held messages without accepting them (their sender died mid-send). */
  dropHeld (): void {
    this.holding = false
    this.held.splice(0)
  }

  release (): void {
    this.holding = false
    for (const accept of this.held.splice(0)) accept()
  }

  /** Waits (bounded) until `count` mails to `to` have arrived; returns them. */
  async waitFor (to: string, count = 1, timeoutMs = 20_000): Promise<ReceivedMail[]> {
    const matching = () => this.received.filter((mail) => mail.to.toLowerCase() === to.toLowerCase())
    if (matching().length >= count) return matching()
    await new Promise<void>((resolve, reject) => {
      const onMail = () => {
        if (matching().length < count) return
        stop()
        resolve()
      }
      const timer = setTimeout(() => {
        stop()
        reject(new Error(`only ${matching().length} of ${count} mails to ${to} arrived within ${timeoutMs} ms`))
      }, timeoutMs)
      const stop = () => {
        clearTimeout(timer)
        this.events.off('mail', onMail)
      }
      this.events.on('mail', onMail)
    })
    return matching()
  }

  async stop (): Promise<void> {
    this.release()
    await this.down()
  }
}

/** The token of the first app link in a mail's text (`…#/verify-email?token=…`). */
export function tokenIn (mail: ReceivedMail): string {
  const match = /[#/][a-z-]+\?token=([A-Za-z0-9_-]+)/.exec(mail.text)
  if (match === null) throw new Error(`no link in the mail "${mail.subject}"`)
  return match[1]!
}

/** The whole link (for the browser test). */
export function linkIn (mail: ReceivedMail): string {
  const match = /(https?:\/\/\S+#\/[a-z-]+\?token=[A-Za-z0-9_-]+)/.exec(mail.text)
  if (match === null) throw new Error(`no link in the mail "${mail.subject}"`)
  return match[1]!
}
