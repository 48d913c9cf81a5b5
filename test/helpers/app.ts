import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import postgres from 'postgres'
import { eq } from 'drizzle-orm'
import type { PressureOptions } from '../../plugins/pressure.js'
import { buildApp } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { openDatabase, type Database } from '../../src/db/client.js'
import { users } from '../../src/db/schema.js'
import { hashPassword } from '../../src/passwords.js'
import { migratedEmbeddedDump, postgresTemplate, whileBusy } from './database-templates.js'

export interface TestContext {
  teardown (fn: () => unknown): void
}

/** The env a test app starts from: quiet, no frontend, the embedded database in memory. */
export function testConfig (overrides: Partial<Config> = {}, env: Record<string, string> = {}): Config {
  const base = loadConfig({ NODE_ENV: 'test', DATA_DIR: 'memory://', LOG_LEVEL: 'silent', FRONTEND_PORT: '0', ...env })
  return Object.freeze({ ...base, ...overrides })
}

export interface FreshDatabaseOptions {
  /** A copy of the run's migrated template rather than an empty database (fast: no migration). */
  migrated?: boolean
}

/**
 * A fresh database for one test file: with TEST_DATABASE_URL, a new database on that Postgres server,
 * dropped at teardown; without it, undefined (the app then uses in-memory PGlite). Empty by default
 * (for tests of migration and start-up); `{ migrated: true }` clones the run's migrated template.
 */
export async function freshDatabaseUrl (t: TestContext, options: FreshDatabaseOptions = {}): Promise<string | undefined> {
  const serverUrl = process.env.TEST_DATABASE_URL
  if (serverUrl === undefined || serverUrl === '') return undefined
  const name = `test_${randomUUID().replaceAll('-', '')}`
  const template = options.migrated === true ? await postgresTemplate(serverUrl) : undefined
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} })
  try {
    await createDatabase(admin, name, template)
  } finally {
    await admin.end()
  }
  t.teardown(async () => {
    const dropper = postgres(serverUrl, { max: 1, onnotice: () => {} })
    await dropper.unsafe(`drop database if exists ${name} with (force)`)
    await dropper.end()
  })
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}

/**
 * CREATE DATABASE, from a template when given. Postgres refuses to copy a template while another
 * session is connected to it, which happens for a moment when two files clone it at once: retried.
 */
async function createDatabase (admin: postgres.Sql, name: string, template: string | undefined): Promise<void> {
  await whileBusy(() => admin.unsafe(template === undefined ? `create database ${name}` : `create database ${name} template ${template}`))
}

/** An embedded in-memory database loaded from the run's migrated dump (seconds faster than a new one), closed at teardown. */
export async function openMigratedEmbedded (t: TestContext): Promise<Database> {
  const database = await openDatabase({ databaseUrl: undefined, dataDir: 'memory://', loadDataDir: await migratedEmbeddedDump() })
  t.teardown(() => database.close())
  return database
}

/** Lines the app logged, for tests that prove what never reaches a log. */
export class LogCapture extends Writable {
  readonly lines: string[] = []
  override _write (chunk: Buffer, _encoding: string, callback: () => void) {
    this.lines.push(chunk.toString())
    callback()
  }

  get text () { return this.lines.join('') }
}

export interface TestAppOptions {
  env?: Record<string, string>
  logs?: LogCapture
  /** Load shedding on event-loop delay is off by default here: several apps share one test process,
   * and an in-memory PGlite starting up in one blocks the loop for all (the overload tests turn it on). */
  pressure?: PressureOptions
}

/** The real app on a fresh database (Postgres when TEST_DATABASE_URL is set, else PGlite), closed at teardown. */
export async function buildTestApp (t: TestContext, overrides: Partial<Config> = {}, options: TestAppOptions = {}): Promise<FastifyInstance> {
  const databaseUrl = await freshDatabaseUrl(t, { migrated: true })
  const config = testConfig({ databaseUrl, ...overrides }, options.env)
  // In memory, the database comes from the migrated dump; it is closed after the app (teardowns run
  // last-in first-out). Anything else (Postgres, a data directory on disk) the app opens itself.
  const database = config.databaseUrl === undefined && config.dataDir.startsWith('memory://') ? await openMigratedEmbedded(t) : undefined
  const app = await buildApp({
    config,
    ...(database === undefined ? {} : { database }),
    pressure: options.pressure ?? { maxEventLoopDelay: 0 },
    ...(options.logs === undefined ? {} : { logStream: options.logs, logLevel: 'info' }),
  })
  // Teardowns run last-in first-out: the app closes before its database is dropped.
  t.teardown(() => app.close())
  await app.ready()
  return app
}

/** Opens the same kind of database the app would, already migrated, for tests that reopen one (restarts, CLI). */
export async function openTestDatabase (t: TestContext): Promise<{ database: Database, databaseUrl: string | undefined }> {
  const databaseUrl = await freshDatabaseUrl(t, { migrated: true })
  if (databaseUrl === undefined) return { database: await openMigratedEmbedded(t), databaseUrl }
  const database = await openDatabase({ databaseUrl, dataDir: 'memory://' })
  t.teardown(() => database.close())
  return { database, databaseUrl }
}

export type Cookies = Record<string, string>

/** The cookies a response sets, as a browser would keep them (a cleared cookie is gone). */
export function cookiesFrom (response: LightMyRequestResponse, jar: Cookies = {}): Cookies {
  const next = { ...jar }
  for (const cookie of response.cookies as Array<{ name: string, value: string, maxAge?: number }>) {
    if (cookie.maxAge === 0 || cookie.value === '') delete next[cookie.name]
    else next[cookie.name] = cookie.value
  }
  return next
}

export interface SignedIn {
  id: string
  username: string
  password: string
  cookies: Cookies
}

let counter = 0
/** A unique valid username: test files share nothing, but names must still be valid. */
export function uniqueName (prefix = 'user'): string {
  counter += 1
  return `${prefix}${counter}_${randomUUID().slice(0, 8)}`
}

export const STRONG_PASSWORD = 'violet-Kettle-42-orbit'

export interface SignInOptions {
  username?: string
  role?: 'user' | 'admin'
  password?: string
  /** Insert the user directly with a hash made once per password and reused (no registration, no
   * `register` audit event): for tests that need many users and do not test registering. */
  seeded?: boolean
}

// One argon2 hash per password for every seeded user of the process: hashing is the costly part of
// making a user, and a seeded user's hash proves nothing a registration test does not.
const seededHashes = new Map<string, Promise<string>>()

/** A user row made directly, with the reused hash; returns its id. */
export async function seedUser (app: FastifyInstance, username: string, password = STRONG_PASSWORD, role: 'user' | 'admin' = 'user'): Promise<string> {
  let passwordHash = seededHashes.get(password)
  if (passwordHash === undefined) {
    passwordHash = hashPassword(password)
    seededHashes.set(password, passwordHash)
  }
  const [row] = await app.db.insert(users).values({ username, passwordHash: await passwordHash, role }).returning({ id: users.id })
  return row!.id
}

/**
 * Registers through the real route (and promotes to admin in the database if asked), then signs in:
 * `signIn(app)`, `signIn(app, { role: 'admin' })`, or the older positional `signIn(app, name, role)`.
 */
export async function signIn (app: FastifyInstance, nameOrOptions?: string | SignInOptions, positionalRole?: 'user' | 'admin', positionalPassword?: string): Promise<SignedIn> {
  const options: SignInOptions = typeof nameOrOptions === 'object' ? nameOrOptions : {}
  const username = (typeof nameOrOptions === 'string' ? nameOrOptions : options.username) ?? uniqueName()
  const role = positionalRole ?? options.role ?? 'user'
  const password = positionalPassword ?? options.password ?? STRONG_PASSWORD
  let id: string
  if (options.seeded === true) {
    id = await seedUser(app, username, password, role)
  } else {
    const registered = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { username, password } })
    if (registered.statusCode !== 201) throw new Error(`register failed: ${registered.statusCode} ${registered.body}`)
    id = registered.json().user.id as string
    if (role === 'admin') await promote(app, id)
  }
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password } })
  if (login.statusCode !== 200) throw new Error(`login failed: ${login.statusCode} ${login.body}`)
  return { id, username, password, cookies: cookiesFrom(login) }
}

export async function promote (app: FastifyInstance, id: string): Promise<void> {
  await app.db.update(users).set({ role: 'admin' }).where(eq(users.id, id))
}

/** The raw Set-Cookie lines of a response (one header or several). */
export function setCookieLines (response: LightMyRequestResponse): string[] {
  const header = response.headers['set-cookie']
  return header === undefined ? [] : [header].flat().map(String)
}
