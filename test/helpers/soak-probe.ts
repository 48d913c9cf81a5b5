// Loaded into the server process under soak (`node --expose-gc --import ./test/helpers/soak-probe.ts`):
// answers the soak driver's questions over IPC about what only the process itself can see.
import { monitorEventLoopDelay } from 'node:perf_hooks'

// The histogram records the time between its 10 ms ticks: the delay is what exceeds the tick.
const RESOLUTION_MS = 10
const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
delay.enable()
const ms = (ns: number) => Math.max(0, Math.round((ns / 1e6 - RESOLUTION_MS) * 100) / 100)

process.on('message', (message: unknown) => {
  if (message === 'reset') {
    delay.reset()
    process.send?.({ reset: true })
  } else if (message === 'sample') {
    // A full collection first, so that the heap measured is what is still referenced, not garbage.
    const gc = (globalThis as { gc?: () => void }).gc
    gc?.()
    const { heapUsed, rss } = process.memoryUsage()
    process.send?.({ heapUsed, rss, gc: gc !== undefined, eventLoop: { p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max) } })
  }
})
// The channel must not keep the server alive once it is asked to stop.
process.channel?.unref()
