import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { eq } from 'drizzle-orm'
import { runUsersCommand } from '../src/cli/users.js'
import { auditEvents, sessions, users } from '../src/db/schema.js'
import { buildTestApp, freshDatabaseUrl, signIn, STRONG_PASSWORD } from './helpers/app.js'
import { runCli } from './helpers/cli.js'

const app = await buildTestApp(t)

const cli = (args: string[], input = '') => runCli(app.database, args, input)

const userNamed = async (username: string) => (await app.db.select().from(users).where(eq(users.username, username)))[0]

t.test('create makes a user (or an admin) with the password from stdin', async (t) => {
  const made = await cli(['create', 'opsadmin', '--admin', '--password-stdin'], `${STRONG_PASSWORD}\n`)
  t.equal(made.code, 0, made.err)
  t.match(made.out, /^created opsadmin \(admin\) [0-9a-f-]{36}\n$/)
  t.equal((await userNamed('opsadmin'))?.role, 'admin')
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'opsadmin', password: STRONG_PASSWORD } })
  t.equal(login.statusCode, 200, 'the password works, with no trailing newline in it')
  t.equal((await cli(['create', 'plainuser'], `${STRONG_PASSWORD}\n`)).code, 0, 'a non-TTY stdin is read like --password-stdin')
  t.equal((await userNamed('plainuser'))?.role, 'user')
})

t.test('create refuses bad input with exit code 1 and a clear message, changing nothing', async (t) => {
  const cases: Array<[string[], string, RegExp]> = [
    [['create', 'x', '--password-stdin'], STRONG_PASSWORD, /username is 3–32/],
    [['create', 'weakling', '--password-stdin'], 'password1', /most common/],
    [['create', 'shorty', '--password-stdin'], 'short', /8–256 characters/],
    [['create', 'OPSADMIN', '--password-stdin'], STRONG_PASSWORD, /taken/],
  ]
  for (const [args, input, message] of cases) {
    const result = await cli(args, `${input}\n`)
    t.equal(result.code, 1, args.join(' '))
    t.match(result.err, message)
  }
  t.equal(await userNamed('weakling'), undefined)
})

t.test('--help prints the usage and exits 0', async (t) => {
  for (const args of [['--help'], ['-h'], ['help'], ['create', '--help']]) {
    const result = await cli(args)
    t.equal(result.code, 0, args.join(' '))
    t.match(result.out, /Usage: npm run users/)
    t.equal(result.err, '')
  }
})

/** A terminal's stdin: each line is typed only once its prompt has been shown. */
async function typed (args: string[], lines: string[]) {
  const stdin = Object.assign(new PassThrough(), { isTTY: true })
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  const answers = [...lines]
  stdout.on('data', (chunk) => {
    out += chunk
    // Typed a moment after the prompt shows, as a person would: by then the CLI is listening.
    if (/: $/.test(String(chunk)) && answers.length > 0) {
      const answer = answers.shift()
      setTimeout(() => stdin.write(`${answer}\n`), 20)
    }
  })
  stderr.on('data', (chunk) => { err += chunk })
  const code = await runUsersCommand(args, app.database, { stdin, stdout, stderr })
  return { code, out, err }
}

t.test('a password typed at a terminal is asked twice; two different ones change nothing', async (t) => {
  const mismatch = await typed(['create', 'typist'], [STRONG_PASSWORD, `${STRONG_PASSWORD}x`])
  t.equal(mismatch.code, 1)
  t.match(mismatch.err, /the two passwords differ/)
  t.match(mismatch.out, /Repeat it: /)
  t.equal(await userNamed('typist'), undefined, 'no user was created')
  t.notMatch(mismatch.out, STRONG_PASSWORD, 'the password is never echoed')
  const match = await typed(['create', 'typist'], [STRONG_PASSWORD, STRONG_PASSWORD])
  t.equal(match.code, 0, match.err)
  t.ok(await userNamed('typist'))
})

t.test('usage errors exit with 2', async (t) => {
  for (const args of [[], ['frobnicate'], ['create'], ['set-role', 'a'], ['list', 'extra'], ['create', 'a', '--bogus']]) {
    const result = await cli(args)
    t.equal(result.code, 2, args.join(' ') || '(nothing)')
    t.match(result.err, /Usage: npm run users/)
  }
})

t.test('set-role changes a role, refuses an unknown role or user, and never removes the last admin', async (t) => {
  t.equal((await cli(['set-role', 'plainuser', 'admin'])).code, 0)
  t.equal((await userNamed('plainuser'))?.role, 'admin')
  t.equal((await cli(['set-role', 'plainuser', 'user'])).code, 0)
  t.match((await cli(['set-role', 'plainuser', 'root'])).err, /a role is one of: user, admin/)
  t.match((await cli(['set-role', 'ghost', 'user'])).err, /no user named ghost/)
  const last = await cli(['set-role', 'opsadmin', 'user'])
  t.equal(last.code, 1)
  t.match(last.err, /no admin/)
  t.equal((await userNamed('opsadmin'))?.role, 'admin')
  const [event] = await app.db.select().from(auditEvents).where(eq(auditEvents.type, 'role_changed'))
  t.match(event, { actorId: null, detail: { by: 'cli' } })
})

t.test('reset-password sets a new password and ends every session of the user', async (t) => {
  const alice = await signIn(app)
  const result = await cli(['reset-password', alice.username, '--password-stdin'], 'Reset-by-Operator-77\n')
  t.equal(result.code, 0, result.err)
  t.match(result.out, /1 session\(s\) ended/)
  t.equal((await app.inject({ url: '/api/auth/me', cookies: alice.cookies })).statusCode, 401)
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: alice.username, password: 'Reset-by-Operator-77' } })).statusCode, 200)
  t.equal((await cli(['reset-password', alice.username, '--password-stdin'], 'qwertyuiop\n')).code, 1, 'a common password is refused')
})

t.test('delete removes a user with their sessions; list prints everyone', async (t) => {
  const bob = await signIn(app)
  t.equal((await cli(['delete', bob.username])).code, 0)
  t.equal(await userNamed(bob.username), undefined)
  t.equal((await app.db.select().from(sessions).where(eq(sessions.userId, bob.id))).length, 0)
  t.equal((await cli(['delete', bob.username])).code, 1)
  t.equal((await cli(['delete', 'opsadmin'])).code, 1, 'not the last admin')
  const list = await cli(['list'])
  t.equal(list.code, 0)
  t.match(list.out, /^id\tusername\trole\tcreated\n/)
  t.match(list.out, /\topsadmin\tadmin\t/)
  t.notMatch(list.out, /argon2/)
})

t.test('the real entry point works on DATABASE_URL or the embedded database, with exit codes', async (t) => {
  const databaseUrl = await freshDatabaseUrl(t)
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', LOG_LEVEL: 'silent' }
  if (databaseUrl === undefined) {
    const dataDir = mkdtempSync(join(tmpdir(), 'cli-'))
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
    env.DATA_DIR = dataDir
  } else env.DATABASE_URL = databaseUrl
  const run = (args: string[], input: string) => new Promise<{ code: number, out: string, err: string }>((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', 'src/cli/users.ts', ...args], { env, timeout: 60_000 }, (error, out, err) => {
      resolve({ code: error === null ? 0 : Number(error.code ?? 1), out, err })
    })
    child.stdin?.end(input)
  })
  const created = await run(['create', 'cliroot', '--admin', '--password-stdin'], `${STRONG_PASSWORD}\n`)
  t.equal(created.code, 0, created.err)
  t.match(created.out, /created cliroot \(admin\)/)
  const listed = await run(['list'], '')
  t.match(listed.out, /cliroot\tadmin/)
  t.equal((await run(['delete', 'nobody'], '')).code, 1)
  const badConfig = await new Promise<number>((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/users.ts', 'list'], { env: { ...env, DATABASE_URL: 'mysql://nope' }, timeout: 30_000 }, (error) => resolve(Number(error?.code ?? 0)))
  })
  t.equal(badConfig, 2, 'a configuration error exits with 2')
})
