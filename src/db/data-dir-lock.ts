import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'

const LOCK_FILE = 'pglite.lock'

/** The embedded database is open in another process (a running API, or the users CLI). */
export class DataDirInUse extends Error {
  constructor (readonly dataDir: string, readonly pid: number) {
    super(`the embedded database in ${dataDir} is open in another process (pid ${pid}: the API, or a users command); stop it, or use DATABASE_URL`)
    this.name = 'DataDirInUse'
  }
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * PGlite keeps the whole database in one process's memory and writes it back to DATA_DIR: a second
 * process opening the same folder works on its own copy, and whichever writes last silently undoes
 * the other (a user created by the CLI beside a running server never existed). So one process at a
 * time: a lock file holding the owner's pid, created exclusively. A lock left by a process that has
 * died (a crash, SIGKILL) is taken over. Returns the release function.
 */
export function lockDataDir (dataDir: string): () => void {
  const path = join(dataDir, LOCK_FILE)
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number
    try {
      fd = openSync(path, 'wx', 0o600)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const pid = Number.parseInt(readFileSync(path, 'utf8'), 10)
      if (Number.isInteger(pid) && pid !== process.pid && isAlive(pid)) throw new DataDirInUse(dataDir, pid)
      // Left behind by a process that is gone (or half-written by one that died at once): take it over.
      rmSync(path, { force: true })
      continue
    }
    writeSync(fd, `${process.pid}\n`)
    closeSync(fd)
    let released = false
    return () => {
      if (released) return
      released = true
      try {
        // Only our own lock: never remove one another process took over.
        if (Number.parseInt(readFileSync(path, 'utf8'), 10) === process.pid) rmSync(path, { force: true })
      } catch {}
    }
  }
  throw new Error(`could not take the lock ${path}`)
}
