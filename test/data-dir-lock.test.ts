import t, { type Test } from 'tap'
import { execFile, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lockDataDir } from '../src/db/data-dir-lock.js'
import { projectRoot } from '../src/paths.js'
import { STRONG_PASSWORD } from './helpers/app.js'
import { killServer, startServer } from './helpers/server-process.js'

// The embedded database is one process's memory written back to DATA_DIR: a second process on the
// same folder (the users CLI beside `npm start`) used to "succeed" and lose its change. One at a time.

// Each case compiles or opens an embedded database from scratch in child processes: minutes on a
// loaded 2-core machine, more than the suite's default per-file timeout.
t.setTimeout(600_000)

function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'data-lock-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('a second lock on one folder is refused while the first holder lives; a dead holder\'s lock is taken over', async (t) => {
  const dir = tempDir(t)
  const release = lockDataDir(dir)
  t.teardown(release)
  // The holder here is this very process: pretend to be another live one (our parent).
  writeFileSync(join(dir, 'pglite.lock'), `${process.ppid}\n`)
  t.throws(() => lockDataDir(dir), { name: 'DataDirInUse', message: /open in another process \(pid \d+.*stop it, or use DATABASE_URL/ })
  // A pid no process has (beyond the kernel's default pid_max): a crash left it.
  writeFileSync(join(dir, 'pglite.lock'), '4194999\n')
  const again = lockDataDir(dir)
  again()
})

t.test('the users CLI and a second server refuse at once beside a running server, and work once it stops', async (t) => {
  const dataDir = tempDir(t)
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', DATA_DIR: dataDir }
  // What `npm run users` runs: the build (a no-op when it is current), then the compiled CLI through
  // the `dist` symlink. Built here first, so that the CLI's own output is all the runs below print.
  const root = projectRoot()
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'pipe' })
  const runCli = (args: string[], input: string) => new Promise<{ code: number, out: string, err: string }>((resolve) => {
    const child = execFile(process.execPath, ['dist/src/cli/users.js', ...args], { cwd: root, env, timeout: 120_000 }, (error, out, err) => {
      resolve({ code: error === null ? 0 : Number(error.code ?? 1), out, err })
    })
    child.stdin?.end(input)
  })

  const server = await startServer({ DATA_DIR: dataDir }, { startTimeoutMs: 180_000 })
  t.teardown(() => killServer(server))

  const refused = await runCli(['create', 'ci-bot', '--password-stdin'], `${STRONG_PASSWORD}\n`)
  t.equal(refused.code, 2, 'the CLI exits with an error')
  t.equal(refused.err.trim().split('\n').length, 1, 'in one line')
  t.match(refused.err, /open in another process.*stop it, or use DATABASE_URL/)
  t.notMatch(refused.out, /created/, 'and does not claim success')

  const second = await startServer({ DATA_DIR: dataDir }, { startTimeoutMs: 60_000 }).then(
    async (started) => { await killServer(started); return 'started' },
    (error: Error) => error.message)
  t.match(second, /exited \(1\) before listening/, 'a second server on the same folder exits 1')
  t.match(second, /open in another process/, 'naming the cause')
  t.notMatch(second, /\n\s+at /, 'without a stack trace')

  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 0, 'the server stops cleanly, releasing the folder')
  const created = await runCli(['create', 'ci-bot', '--password-stdin'], `${STRONG_PASSWORD}\n`)
  t.equal(created.code, 0, created.err)
  const listed = await runCli(['list'], '')
  t.match(listed.out, /\tci-bot\tuser\t/, 'the user exists')
  const help = await runCli(['--help'], '')
  t.equal(help.code, 0)
  t.match(help.out, /--password-stdin/, '--help says how to use it')
})
