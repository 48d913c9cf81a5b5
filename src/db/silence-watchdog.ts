import { connect as netConnect, type Socket } from 'node:net'

// See deadlines.ts: a connection whose server owes an answer and has been silent this long is dead.
export const SILENCE_DEADLINE_MS = 1500

/**
 * Counts the protocol messages in one direction of a Postgres connection (type byte + int32 length,
 * after an untyped startup message on the client side), reporting those whose type is in `types`.
 * Messages may arrive split over or packed into chunks; only headers are looked at.
 */
class MessageCounter {
  private skip = 0
  private header: number[] = []
  private untypedFirst: boolean
  constructor (private readonly types: ReadonlySet<number>, untypedFirst: boolean) { this.untypedFirst = untypedFirst }

  /** How many messages of the watched types start in this chunk. */
  feed (chunk: Uint8Array): number {
    let counted = 0
    let at = 0
    while (at < chunk.length) {
      if (this.skip > 0) {
        const step = Math.min(this.skip, chunk.length - at)
        this.skip -= step
        at += step
        continue
      }
      const headerLength = this.untypedFirst ? 4 : 5
      this.header.push(chunk[at]!)
      at += 1
      if (this.header.length < headerLength) continue
      const [a, b, c, d] = this.header.slice(headerLength - 4)
      const length = ((a! << 24) | (b! << 16) | (c! << 8) | d!) >>> 0
      if (this.untypedFirst) {
        counted += 1 // the startup message, answered by the first ReadyForQuery
        this.untypedFirst = false
      } else if (this.types.has(this.header[0]!)) {
        counted += 1
      }
      this.skip = Math.max(0, length - 4)
      this.header = []
    }
    return counted
  }
}

const QUERY = 0x51 // 'Q': simple query, answered by one ReadyForQuery
const SYNC = 0x53 // 'S': ends an extended-protocol batch, answered by one ReadyForQuery
const READY_FOR_QUERY = 0x5a // 'Z'

/**
 * A TCP connection to Postgres that destroys itself when the server owes it an answer (a ReadyForQuery
 * for each Query or Sync sent, and one for the startup) and has sent nothing for `deadlineMs`. The
 * pending queries then fail with QUERY_TIMEOUT (a 503), and postgres.js replaces the connection.
 */
export function watchedSocket (host: string, port: number, deadlineMs: number): Socket {
  const socket = netConnect({ host, port })
  const sent = new MessageCounter(new Set([QUERY, SYNC]), true)
  const received = new MessageCounter(new Set([READY_FOR_QUERY]), false)
  let owed = 0
  let timer: NodeJS.Timeout | undefined
  const expire = () => {
    socket.destroy(Object.assign(new Error(`the database sent nothing for ${deadlineMs} ms`), { code: 'QUERY_TIMEOUT' }))
  }
  // Restarts the clock: the server must say something within the deadline from now.
  const arm = () => {
    if (timer === undefined) {
      timer = setTimeout(expire, deadlineMs)
      timer.unref()
    } else {
      timer.refresh()
    }
  }
  const disarm = () => {
    clearTimeout(timer)
    timer = undefined
  }

  const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean
  socket.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (chunk instanceof Uint8Array) owed += sent.feed(chunk)
    if (owed > 0 && timer === undefined) arm()
    return write(chunk, ...rest)
  }) as Socket['write']
  socket.on('data', (chunk: Buffer) => {
    owed -= received.feed(chunk)
    if (owed > 0) arm()
    else disarm()
  })
  socket.once('close', disarm)
  return socket
}

/** The watchdog parses the plain protocol: with TLS, or several hosts, postgres.js connects by itself. */
export function watchableTarget (url: string): { host: string, port: number } | undefined {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return undefined // several hosts: not a WHATWG URL
  }
  if (parsed.searchParams.has('host')) return undefined // a Unix socket
  const sslmode = parsed.searchParams.get('sslmode') ?? parsed.searchParams.get('ssl')
  if (sslmode !== null && sslmode !== 'disable' && sslmode !== 'false') return undefined
  if (parsed.hostname === '' || parsed.host.includes(',')) return undefined
  return { host: decodeURIComponent(parsed.hostname).replace(/^\[|\]$/g, ''), port: parsed.port === '' ? 5432 : Number(parsed.port) }
}
