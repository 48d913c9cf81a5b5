#!/usr/bin/env node
// `npm run build` (and so `npm start`, `npm run users`, …): compiles the TypeScript only when the
// sources changed, and never lets a start run half-written JavaScript.
//
// Each build goes to a folder of its own named by a hash of its inputs (`dist.<hash>/`), written
// aside and renamed into place when complete; `dist` is a symbolic link to the current one, swapped
// with one rename. So two starts from one checkout at the same moment (two terminals, a process
// manager, a test harness) each either find the build already there or make their own complete one:
// no process ever reads a file another tsc is writing. Unchanged sources cost a hash of ~60 files
// (milliseconds), not a compile.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const SOURCE_DIRS = ['src', 'plugins', 'routes']
const CONFIG_FILES = ['tsconfig.json', 'tsconfig.build.json']
const COMPLETE = '.complete'
// Builds kept besides the current one: a server started a moment ago from the previous build keeps
// its files (it loaded them at start, but a stack trace or a late import still finds them).
const KEEP_PREVIOUS = 2

function sourceFiles (dir) {
  const files = []
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) files.push(...sourceFiles(path))
    else if (entry.name.endsWith('.ts')) files.push(path)
  }
  return files
}

/** A hash of everything the output depends on: the sources, the compiler settings, tsc's version. */
function fingerprint () {
  const hash = createHash('sha256')
  const typescript = JSON.parse(readFileSync(join(root, 'node_modules', 'typescript', 'package.json'), 'utf8')).version
  hash.update(`typescript ${typescript}\n`)
  for (const file of [...SOURCE_DIRS.flatMap(sourceFiles), ...CONFIG_FILES].sort()) {
    hash.update(`${file}\n`)
    hash.update(readFileSync(join(root, file)))
  }
  return hash.digest('hex').slice(0, 16)
}

/** Points `dist` at `target` with one rename, so a reader sees the old build or the new, never neither. */
function pointDistAt (target) {
  const dist = join(root, 'dist')
  let stat
  try { stat = lstatSync(dist) } catch {}
  if (stat?.isSymbolicLink() && readlinkSync(dist) === target) return
  // A real folder from an older checkout's plain `tsc`: a rename cannot replace it, so it goes first.
  if (stat !== undefined && !stat.isSymbolicLink()) rmSync(dist, { recursive: true, force: true })
  const link = join(root, `dist.link-${process.pid}`)
  rmSync(link, { force: true })
  symlinkSync(target, link)
  renameSync(link, dist)
}

function prune (current) {
  const builds = readdirSync(root)
    .filter((name) => /^dist\.[0-9a-f]{16}$/.test(name) && name !== current)
    .map((name) => ({ name, time: statSync(join(root, name)).mtimeMs }))
    .sort((a, b) => b.time - a.time)
  for (const { name } of builds.slice(KEEP_PREVIOUS)) rmSync(join(root, name), { recursive: true, force: true })
  // Half-written builds of processes that died mid-compile.
  for (const name of readdirSync(root)) {
    const match = /^dist\.tmp-(\d+)-/.exec(name)
    if (match && !isAlive(Number(match[1]))) rmSync(join(root, name), { recursive: true, force: true })
  }
}

function isAlive (pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return error.code === 'EPERM'
  }
}

const name = `dist.${fingerprint()}`
const build = join(root, name)
if (!existsSync(join(build, COMPLETE))) {
  const started = Date.now()
  console.error(`building: compiling the TypeScript into ${name}/ (the sources changed or were never built; ~20 s on a busy machine)`)
  const aside = join(root, `dist.tmp-${process.pid}-${started}`)
  try {
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', aside], { cwd: root, stdio: 'inherit' })
    writeFileSync(join(aside, COMPLETE), `${new Date().toISOString()}\n`)
    try {
      renameSync(aside, build)
    } catch (error) {
      // Another start finished the same build first: theirs is identical, keep it.
      if (!existsSync(join(build, COMPLETE))) throw error
    }
  } catch (error) {
    if (error.status !== undefined) console.error('build failed: run `npm run check` for the errors in full')
    else console.error(`build failed: ${error.message}`)
    process.exitCode = 1
  } finally {
    rmSync(aside, { recursive: true, force: true })
  }
  if (process.exitCode !== 1) console.error(`built in ${((Date.now() - started) / 1000).toFixed(1)} s`)
}
if (process.exitCode !== 1) {
  pointDistAt(relative(root, build))
  prune(name)
  // Browser modules the example frontend imports (src/frontend-vendor.ts), copied out of node_modules.
  execFileSync(process.execPath, [join(root, 'dist', 'src', 'frontend-vendor.js')], { cwd: root, stdio: 'inherit' })
}
