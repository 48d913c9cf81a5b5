// Where an API process spent its CPU: reads a V8 .cpuprofile (node --cpu-prof) and prints the self
// time by package or source file, then the busiest functions.
//
//   node --import tsx test/bench/profile-summary.ts bench-results/profiles/CPU.….cpuprofile [--top 25]
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

/** `node_modules/@fastify/cookie/…` → `@fastify/cookie`; our own files keep their path; V8's own work is `(program)` etc. */
function ownerOf (url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)'
  const path = url.replace(/^file:\/\//, '')
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)
  if (inModules) return inModules[1]!
  if (path.startsWith('node:')) return 'node core'
  const ours = /\/(dist\/)?((?:src|plugins|routes)\/.+)$/.exec(path)
  return ours ? ours[2]! : path
}

function main () {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } })
  const file = positionals[0]
  if (file === undefined) throw new Error('usage: profile-summary.ts FILE.cpuprofile [--top N]')
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const selfMicros = new Map<number, number>()
  profile.samples.forEach((id, i) => selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  const total = [...selfMicros.values()].reduce((a, b) => a + b, 0)
  const idle = [...selfMicros].filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)').reduce((a, [, us]) => a + us, 0)
  const busy = total - idle

  const byOwner = new Map<string, number>()
  const byFunction = new Map<string, number>()
  for (const [id, micros] of selfMicros) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame
    if (functionName === '(idle)') continue
    const owner = ownerOf(url, functionName)
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + micros)
    const name = `${functionName || '(anonymous)'} ${owner}:${lineNumber + 1}`
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros)
  }
  const share = (micros: number) => `${(100 * micros / busy).toFixed(1).padStart(5)} %`
  console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (shares below are of the busy time)\n`)
  console.log('self time by package or file:')
  for (const [owner, micros] of [...byOwner].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) console.log(`  ${share(micros)}  ${owner}`)
  console.log('\nbusiest functions (self time):')
  for (const [name, micros] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) console.log(`  ${share(micros)}  ${name}`)
}

main()
