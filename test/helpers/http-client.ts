import { connect, type Socket } from 'node:net'

/** A tiny cookie-keeping client for a server in another process (Node's fetch keeps no cookies). */
export class HttpClient {
  readonly cookies = new Map<string, string>()
  constructor (readonly baseUrl: string) {}

  async request (method: string, path: string, body?: unknown): Promise<{ status: number, json: () => unknown, text: string, headers: Headers }> {
    const headers: Record<string, string> = {}
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ')
    const response = await fetch(this.baseUrl + path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';')
      const separator = pair.indexOf('=')
      const name = pair.slice(0, separator).trim()
      const value = pair.slice(separator + 1).trim()
      const cleared = value === '' || attributes.some((attribute) => /^\s*max-age=0\s*$/i.test(attribute))
      if (cleared) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
    const text = await response.text()
    return { status: response.status, text, headers: response.headers, json: () => JSON.parse(text) }
  }
}

/**
 * A request held open on purpose: its headers announce a body that is only half sent, so the server
 * has accepted it and waits inside it. `finish()` sends the rest and resolves with the status line.
 */
export async function holdRequestOpen (port: number, path: string, body: unknown): Promise<{ finish: () => Promise<string>, socket: Socket }> {
  const payload = Buffer.from(JSON.stringify(body))
  const socket = connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  let answer = ''
  socket.on('data', (chunk: Buffer) => { answer += chunk.toString() })
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.on('error', () => {})
  const half = Math.floor(payload.length / 2)
  socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n`)
  socket.write(payload.subarray(0, half))
  return {
    socket,
    finish: async () => {
      socket.write(payload.subarray(half))
      await closed
      return answer
    },
  }
}

/** True when a new TCP connection to the port is refused. */
export async function isRefused (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(false) })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'))
  })
}
