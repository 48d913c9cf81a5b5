import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The project root (the folder holding package.json and drizzle/), found by walking up from this
 * file, so the same code works from `src/` under tsx and from `dist/src/` once compiled.
 */
export function projectRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'drizzle', 'meta', '_journal.json'))) return dir
    const parent = dirname(dir)
    if (parent === dir) throw new Error('project root (with drizzle/) not found above ' + fileURLToPath(import.meta.url))
    dir = parent
  }
}
