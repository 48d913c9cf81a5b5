import { createInterface } from 'node:readline'
import { Writable, type Readable } from 'node:stream'
import { parseArgs } from 'node:util'
import { ConfigError, loadDatabaseConfig, loadEncryptionConfig, loadMailConfig } from '../config.js'
import { openDatabase, type Database } from '../db/client.js'
import { recordAuditEvent, type AuditLog } from '../db/queries/audit.js'
import { disableTotp, reencryptTotpSecrets } from '../db/queries/mfa.js'
import { voidSecrets } from '../db/queries/one-time-secrets.js'
import { deleteAllPasskeys } from '../db/queries/passkeys.js'
import { revokeAllSessions } from '../db/queries/sessions.js'
import { changeRole, createUser, deleteUser, findUserWithHashByName, listUsers, setPasswordHash } from '../db/queries/users.js'
import { ROLES, type Role } from '../db/schema.js'
import { LastAdmin, UsernameTaken } from '../errors.js'
import { enqueueNotification, type MailSettings } from '../mail/notify.js'
import { isValidUsername, passwordLengthProblem, USERNAME_RULE_IN_WORDS } from '../rules.js'
import { describeStartupError } from '../startup-errors.js'
import { isEntryPoint } from '../paths.js'
import { hashPassword, isCommonPassword } from '../passwords.js'
import { createSecretBox, SecretBoxError } from '../secret-box.js'

export const USAGE = `Usage: npm run users -- <command>

  create <username> [--admin] [--password-stdin]   create a user (asks for the password twice unless --password-stdin)
  set-role <username> <user|admin>                 change a role (never removes the last admin)
  reset-password <username> [--password-stdin]     set a new password and end all of the user's sessions
  delete <username>                                delete a user with their tasks and sessions
  list                                             list every user
  mfa-reset <username>                             turn the user's TOTP off (recovery codes too) and end their sessions
  reencrypt-secrets                                re-seal every TOTP secret with ENCRYPTION_KEY (after a rotation;
                                                   the old key must be in ENCRYPTION_PREVIOUS_KEYS)

Works on DATABASE_URL, or on the embedded database in DATA_DIR (./data) when it is not set.
The embedded database can be open in one process at a time: stop \`npm start\` first, or use DATABASE_URL.
--password-stdin reads the first line of stdin (for scripts); typed at a terminal, a password is asked twice.
reset-password and mfa-reset tell the user by mail at their verified address, as the server would (run
them with the server's SMTP_URL, APP_URL and ENCRYPTION_KEY); the running server sends the mail.
  --help, -h                                       this text
Exit codes: 0 done, 1 refused (unknown user, name taken, last admin, weak password, passwords differ),
2 usage, configuration or a database that cannot be opened.`

export interface CliIo {
  stdin: Readable & { isTTY?: boolean, setRawMode?: (raw: boolean) => unknown }
  stdout: Writable
  stderr: Writable
}

class CliRefusal extends Error {}

const quietLog: AuditLog = { info: () => {} }

/**
 * Reads a new password: the first line of stdin for scripts, or typed twice at a prompt without echo
 * (a typo in a password nobody can see would lock its owner out).
 */
async function readNewPassword (io: CliIo, fromStdin: boolean): Promise<string> {
  if (fromStdin || io.stdin.isTTY !== true) return readFirstLine(io)
  const [first, second] = await askWithoutEcho(io, ['Password (not shown): ', 'Repeat it: '])
  if (first !== second) throw new CliRefusal('the two passwords differ; nothing was changed')
  return first ?? ''
}

/** The first line of stdin, or nothing when stdin ends without one. */
async function readFirstLine (io: CliIo): Promise<string> {
  const lines = createInterface({ input: io.stdin, terminal: false })
  const first = await new Promise<string>((resolve) => {
    lines.once('line', resolve)
    lines.once('close', () => resolve(''))
  })
  lines.close()
  return first
}

/**
 * Asks each question on the terminal and echoes nothing, so a password never lands on screen or in
 * scrollback. One interface for all of them: a second one on the same stream would miss input the
 * first had already read.
 */
async function askWithoutEcho (io: CliIo, questions: string[]): Promise<string[]> {
  const muted = new Writable({ write: (_chunk, _encoding, callback) => { callback() } })
  const prompt = createInterface({ input: io.stdin, output: muted, terminal: true })
  const answers: string[] = []
  for (const question of questions) {
    io.stdout.write(question)
    answers.push(await new Promise<string>((resolve) => prompt.question('', resolve)))
    io.stdout.write('\n')
  }
  prompt.close()
  return answers
}

function checkNewPassword (password: string): void {
  const lengthProblem = passwordLengthProblem(password)
  if (lengthProblem !== undefined) throw new CliRefusal(`the password ${lengthProblem}`)
  if (isCommonPassword(password)) throw new CliRefusal('that password is among the most common ones; choose another')
}

/**
 * How this shell's environment says mail works, as the server would read the same variables (run
 * the CLI with the server's environment): undefined when the e-mail features are off.
 */
function mailSettingsFrom (env: NodeJS.ProcessEnv): MailSettings | undefined {
  const mail = loadMailConfig(env)
  return mail === undefined ? undefined : { appUrl: mail.appUrl, secretBox: createSecretBox(mail.encryptionKey, mail.encryptionPreviousKeys) }
}

/** The user is told, as of a change they made themselves, only that an administrator made it. */
const byAdministrator = () => ({ at: new Date(), byAdministrator: true } as const)

async function findByName (database: Database, username: string) {
  const user = await findUserWithHashByName(database.db, username)
  if (!user) throw new CliRefusal(`no user named ${username}`)
  return user
}

/** Runs one command against an open database and returns the process exit code. */
export async function runUsersCommand (argv: string[], database: Database, io: CliIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { admin: { type: 'boolean' }, 'password-stdin': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } })
  } catch (error) {
    io.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`)
    return 2
  }
  if (parsed.values.help === true || parsed.positionals[0] === 'help') {
    io.stdout.write(`${USAGE}\n`)
    return 0
  }
  const [command, ...rest] = parsed.positionals
  const { db } = database
  const usage = () => { io.stderr.write(`${USAGE}\n`); return 2 }
  try {
    switch (command) {
      case 'create': {
        const [username] = rest
        if (username === undefined || rest.length !== 1) return usage()
        if (!isValidUsername(username)) throw new CliRefusal(`a username is ${USERNAME_RULE_IN_WORDS}`)
        const password = await readNewPassword(io, parsed.values['password-stdin'] === true)
        checkNewPassword(password)
        const role: Role = parsed.values.admin === true ? 'admin' : 'user'
        const passwordHash = await hashPassword(password)
        const user = await db.transaction(async (tx) => {
          const created = await createUser(tx, { username, passwordHash, role })
          await recordAuditEvent(tx, quietLog, { type: 'user_created', userId: created.id, detail: { role, by: 'cli' } })
          return created
        })
        io.stdout.write(`created ${user.username} (${user.role}) ${user.id}\n`)
        return 0
      }
      case 'set-role': {
        const [username, role] = rest
        if (username === undefined || role === undefined || rest.length !== 2) return usage()
        if (!(ROLES as readonly string[]).includes(role)) throw new CliRefusal(`a role is one of: ${ROLES.join(', ')}`)
        const target = await findByName(database, username)
        await db.transaction(async (tx) => {
          const changed = await changeRole(tx, target.id, role as Role)
          if (changed) await recordAuditEvent(tx, quietLog, { type: 'role_changed', userId: changed.id, detail: { role, by: 'cli' } })
        })
        io.stdout.write(`${target.username} is now ${role}\n`)
        return 0
      }
      case 'reset-password': {
        const [username] = rest
        if (username === undefined || rest.length !== 1) return usage()
        const target = await findByName(database, username)
        // Read before the password is asked for: a configuration error stops the command before any change.
        const mail = mailSettingsFrom(env)
        const password = await readNewPassword(io, parsed.values['password-stdin'] === true)
        checkNewPassword(password)
        const passwordHash = await hashPassword(password)
        const { revoked, told } = await db.transaction(async (tx) => {
          await setPasswordHash(tx, target.id, passwordHash)
          const count = await revokeAllSessions(tx, target.id)
          await recordAuditEvent(tx, quietLog, { type: 'password_reset', userId: target.id, detail: { revokedSessions: count, by: 'cli' } })
          // A password changed behind the user's back must not go unnoticed, whoever changed it.
          return { revoked: count, told: await enqueueNotification(tx, mail, target.id, 'password_changed', byAdministrator()) }
        })
        io.stdout.write(`password reset for ${target.username}; ${revoked} session(s) ended${told ? '; told by mail' : ''}\n`)
        return 0
      }
      case 'delete': {
        const [username] = rest
        if (username === undefined || rest.length !== 1) return usage()
        const target = await findByName(database, username)
        await db.transaction(async (tx) => {
          const deleted = await deleteUser(tx, target.id)
          if (deleted) await recordAuditEvent(tx, quietLog, { type: 'user_deleted', userId: deleted.id, detail: { username: deleted.username, by: 'cli' } })
        })
        io.stdout.write(`deleted ${target.username}\n`)
        return 0
      }
      case 'list': {
        if (rest.length !== 0) return usage()
        let cursor: string | undefined
        io.stdout.write('id\tusername\trole\tcreated\n')
        do {
          const page = await listUsers(db, 100, cursor)
          for (const user of page.items) io.stdout.write(`${user.id}\t${user.username}\t${user.role}\t${user.createdAt.toISOString()}\n`)
          cursor = page.nextCursor ?? undefined
        } while (cursor !== undefined)
        return 0
      }
      case 'mfa-reset': {
        // For an administrator helping a user who lost their phone and their recovery codes (or their
        // passkeys): TOTP off, passkeys removed; the user signs in with the password alone and enrols
        // again. Whoever held a session is out.
        const [username] = rest
        if (username === undefined || rest.length !== 1) return usage()
        const target = await findByName(database, username)
        const mail = mailSettingsFrom(env)
        const { revoked, told } = await db.transaction(async (tx) => {
          const wasOn = await disableTotp(tx, target.id)
          // A lost passkey is a lost second factor too: the user adds a new one after signing in.
          const passkeysRemoved = await deleteAllPasskeys(tx, target.id)
          await voidSecrets(tx, target.id, 'mfa_pending')
          const count = await revokeAllSessions(tx, target.id)
          await recordAuditEvent(tx, quietLog, { type: 'mfa_disabled', userId: target.id, detail: { by: 'cli', reset: true, wasOn, passkeysRemoved, revokedSessions: count } })
          // Told only when a second factor was on: the mail says it was turned off.
          const hadOne = wasOn || passkeysRemoved > 0
          return { revoked: count, told: hadOne && await enqueueNotification(tx, mail, target.id, 'mfa_disabled', byAdministrator()) }
        })
        io.stdout.write(`second factor reset for ${target.username}; ${revoked} session(s) ended${told ? '; told by mail' : ''}\n`)
        return 0
      }
      case 'reencrypt-secrets': {
        if (rest.length !== 0) return usage()
        const keys = loadEncryptionConfig(env)
        const resealed = await reencryptTotpSecrets(db, createSecretBox(keys.encryptionKey, keys.encryptionPreviousKeys))
        io.stdout.write(`${resealed} TOTP secret(s) re-sealed with the current ENCRYPTION_KEY\n`)
        return 0
      }
      default:
        return usage()
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr.write(`error: ${error.message}\n`)
      return 2
    }
    if (error instanceof CliRefusal) io.stderr.write(`error: ${error.message}\n`)
    else if (error instanceof UsernameTaken) io.stderr.write('error: that username is taken\n')
    else if (error instanceof LastAdmin) io.stderr.write('error: this would leave no admin\n')
    else if (error instanceof SecretBoxError) io.stderr.write(`error: a TOTP secret could not be opened (${error.message})\n`)
    else throw error
    return 1
  }
}

async function main (): Promise<number> {
  // --help needs no database (and must work beside a running server).
  const argv = process.argv.slice(2)
  if (argv.includes('--help') || argv.includes('-h') || argv[0] === 'help') {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  let database: Database
  try {
    const config = loadDatabaseConfig(process.env)
    database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1, prepare: config.databasePrepare })
    await database.migrate()
  } catch (error) {
    const line = describeStartupError(error, { databaseUrl: process.env.DATABASE_URL || undefined })
    process.stderr.write(`error: ${line ?? `cannot open the database: ${(error as Error).message}`}\n`)
    return 2
  }
  try {
    return await runUsersCommand(process.argv.slice(2), database, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr })
  } finally {
    await database.close()
  }
}

if (isEntryPoint(import.meta.url)) {
  process.exitCode = await main()
}
