import { connect, createServer, type Server, type Socket } from 'node:net'

/**
 * Drops a connection the way a failing network does, with a reset. A socket still connecting is
 * destroyed outright: Node would otherwise wait for it to connect before resetting it. So is one
 * whose end was already sent: libuv refuses to reset a socket while its shutdown is in flight, and
 * Node 20 then never closes the handle, so the process spins for ever at exit (seen in CI: every
 * test passed, then tap's timeout).
 */
function reset (socket: Socket): void {
  // A socket destroyed while connecting can keep its handle open a while: never let it hold the
  // test process alive.
  socket.unref()
  if (socket.connecting || socket.pending || socket.writableEnded) socket.destroy()
  else socket.resetAndDestroy()
}

export type FaultMode = 'pass' | 'cut' | 'stall'

/** One direction of a proxied connection: what is held back while the link is stalled. */
interface Direction { from: Socket, to: Socket | undefined, held: Array<Buffer | 'end'> }

interface Link { client: Socket, server: Socket | undefined, up: Direction, down: Direction }

/**
 * A TCP proxy in front of a database that can fail the way networks do:
 * - `pass`: forwards both ways;
 * - `cut()`: resets every open connection and every new one (a database that is down);
 * - `stall()`: accepts connections and keeps existing ones open but forwards nothing either way, not
 *   even a close (a black hole: a dead switch, a partition, a frozen server);
 * - `restore()`: back to `pass`; what a stall held back is delivered, as TCP would once the link heals.
 */
export class FaultProxy {
  private mode: FaultMode = 'pass'
  private readonly links = new Set<Link>()
  /** Every socket it ever opened or accepted and that is not closed yet, links or not. */
  private readonly sockets = new Set<Socket>()

  private constructor (private readonly server: Server, private readonly target: { host: string, port: number }) {
    server.on('connection', (client) => this.accept(client))
  }

  static async start (target: { host: string, port: number }): Promise<FaultProxy> {
    const server = createServer()
    const proxy = new FaultProxy(server, target)
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    return proxy
  }

  /** The proxy's port on 127.0.0.1. */
  get port (): number {
    const address = this.server.address()
    if (address === null || typeof address === 'string') throw new Error('the proxy is not listening')
    return address.port
  }

  /** `url` (a postgres:// URL) rewritten to go through the proxy. */
  urlFor (url: string): string {
    const proxied = new URL(url)
    proxied.hostname = '127.0.0.1'
    proxied.port = String(this.port)
    return proxied.toString()
  }

  get connections (): number { return this.links.size }

  cut (): void {
    this.mode = 'cut'
    for (const link of this.links) this.drop(link)
  }

  stall (): void {
    this.mode = 'stall'
  }

  restore (): void {
    this.mode = 'pass'
    for (const link of this.links) {
      if (link.server === undefined) this.connectUpstream(link)
      this.flush(link.up)
      this.flush(link.down)
      if (link.client.destroyed) this.finish(link)
    }
  }

  async close (): Promise<void> {
    for (const link of this.links) this.drop(link)
    const closing = [...this.sockets].map((socket) => new Promise<void>((resolve) => {
      if (socket.closed) resolve()
      else socket.once('close', () => resolve())
    }))
    for (const socket of this.sockets) reset(socket)
    // Every socket fully closed before the test goes on (or the process exits): one destroyed while
    // connecting closes late, and a process exiting meanwhile can hang.
    await Promise.race([Promise.all(closing), new Promise((resolve) => setTimeout(resolve, 2000))])
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private track (socket: Socket): void {
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
  }

  private accept (client: Socket): void {
    this.track(client)
    if (this.mode === 'cut') {
      client.resetAndDestroy()
      return
    }
    const link: Link = {
      client,
      server: undefined,
      up: { from: client, to: undefined, held: [] },
      down: { from: client, to: client, held: [] },
    }
    this.links.add(link)
    client.on('error', () => this.drop(link))
    // A client that gives up during a stall: its close, like everything else, waits for the link to heal.
    client.on('close', () => { if (this.mode !== 'stall') this.finish(link) })
    this.relay(link.up)
    // In a stall, the upstream connection waits for the link to heal, as a SYN would.
    if (this.mode === 'pass') this.connectUpstream(link)
  }

  private connectUpstream (link: Link): void {
    const server = connect(this.target.port, this.target.host)
    // Upstream sockets never hold the test process alive: one destroyed while still connecting can
    // keep its handle open long after the proxy is closed.
    server.unref()
    this.track(server)
    link.server = server
    link.up.to = server
    link.down.from = server
    server.on('error', () => this.drop(link))
    server.on('close', () => {
      if (this.mode === 'stall') return // held back, delivered (with its end) on restore
      this.links.delete(link)
      if (!link.client.destroyed) link.client.destroy()
    })
    this.relay(link.down)
    this.flush(link.up)
  }

  /** Forwards `direction` as it comes, or holds it back while stalled. */
  private relay (direction: Direction): void {
    direction.from.on('data', (chunk: Buffer) => this.forward(direction, chunk))
    direction.from.on('end', () => this.forward(direction, 'end'))
  }

  private forward (direction: Direction, item: Buffer | 'end'): void {
    if (this.mode === 'cut') return
    if (this.mode === 'stall' || direction.to === undefined || direction.held.length > 0) {
      direction.held.push(item)
      return
    }
    this.deliver(direction.to, item)
  }

  private flush (direction: Direction): void {
    if (this.mode !== 'pass' || direction.to === undefined) return
    const { to } = direction
    for (const item of direction.held.splice(0)) this.deliver(to, item)
  }

  private deliver (to: Socket, item: Buffer | 'end'): void {
    if (to.destroyed) return
    if (item === 'end') to.end()
    else to.write(item)
  }

  /** The client is gone: the server hears the close once what was held back has been delivered. */
  private finish (link: Link): void {
    this.links.delete(link)
    if (link.server !== undefined && !link.server.destroyed) link.server.end()
  }

  private drop (link: Link): void {
    this.links.delete(link)
    if (!link.client.destroyed) reset(link.client)
    if (link.server !== undefined && !link.server.destroyed) reset(link.server)
  }
}
