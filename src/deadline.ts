// Waits that must answer fast even when what they wait for hangs (readiness, the breaker's probe).

/**
 * Settles with `work`, or rejects with `onTimeout()` after `ms`, whichever comes first; the timer
 * never outlives the race. For waits that must answer fast even when the database hangs.
 */
export async function withDeadline<T> (work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(onTimeout()), ms) })
  try {
    return await Promise.race([work, deadline])
  } finally {
    clearTimeout(timer)
  }
}
