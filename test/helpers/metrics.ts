import { spawn } from 'node:child_process'
import type { FastifyInstance } from 'fastify'

/** The value of one series in a Prometheus text scrape, exactly as written (`name{labels}`); 0 when absent. */
export function sampleOf (scrape: string, series: string): number {
  for (const line of scrape.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1))
  }
  return 0
}

export async function scrape (app: FastifyInstance, token: string): Promise<string> {
  const response = await app.inject({ url: '/api/metrics', headers: { authorization: `Bearer ${token}` } })
  if (response.statusCode !== 200) throw new Error(`scrape: ${response.statusCode} ${response.body}`)
  return response.body
}

/** Runs promtool (Debian's `prometheus` package) with `input` on stdin; resolves with its exit code and output. */
export function promtool (args: string[], input?: string): Promise<{ code: number | null, output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, output }))
    child.stdin.end(input ?? '')
  })
}
