import { existsSync, realpathSync } from 'node:fs'
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

/**
 * Whether the module at `moduleUrl` is the program node was asked to run. Both sides are resolved
 * to real paths: `dist` is a symlink to the current build, and node resolves it in
 * `import.meta.url` but not in `process.argv[1]`, so a plain comparison is never true there.
 */
export function isEntryPoint (moduleUrl: string): boolean {
  const entry = process.argv[1]
  if (entry === undefined) return false
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(moduleUrl))
  } catch {
    return false
  }
}
