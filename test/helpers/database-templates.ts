import { createHash, randomUUID } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { drizzle } from 'drizzle-orm/pglite'
import { migrate } from 'drizzle-orm/pglite/migrator'
import postgres from 'postgres'
import { migrationsFolder, openDatabase } from '../../src/db/client.js'
import { projectRoot } from '../../src/paths.js'

// Migrating a new database for every test app costs the same work hundreds of times per run, and a
// new embedded PGlite spends seconds initialising before it even migrates. So each run migrates once:
// a template database on the Postgres server, cloned per test file, and a dump of a migrated PGlite
// that each embedded test database loads. Both are named after a digest of what they are made from
// (the migrations, the code that applies them, the PGlite version), so a changed migration gets a new
// one and an old one is never reused by mistake.

function templateKey (): string {
  const digest = createHash('sha256')
  const folder = migrationsFolder()
  const files = [
    ...readdirSync(folder).filter((name) => name.endsWith('.sql')).sort().map((name) => join(folder, name)),
    join(folder, 'meta', '_journal.json'),
    join(projectRoot(), 'src', 'db', 'client.ts'),
    join(projectRoot(), 'node_modules', '@electric-sql', 'pglite', 'package.json'),
  ]
  for (const file of files) digest.update(file).update(existsSync(file) ? readFileSync(file) : '')
  return digest.digest('hex').slice(0, 16)
}

let key: string | undefined
const currentKey = () => { key ??= templateKey(); return key }

let dump: Promise<Blob> | undefined

/**
 * A dump of a migrated embedded database, made once per set of migrations and kept in the system's
 * temporary folder for every later test process. Two processes making it at once each write their own
 * file and rename it into place: whichever lands last, the content is the same.
 */
export function migratedEmbeddedDump (): Promise<Blob> {
  dump ??= (async () => {
    const file = join(tmpdir(), `cookie-auth-api-pglite-${currentKey()}.tar`)
    if (existsSync(file)) return new Blob([await readFile(file)])
    const client = await PGlite.create()
    try {
      await migrate(drizzle({ client }), { migrationsFolder: migrationsFolder() })
      const made = await client.dumpDataDir('none')
      const partial = `${file}.${randomUUID()}.partial`
      await writeFile(partial, Buffer.from(await made.arrayBuffer()))
      await rename(partial, file)
      return made
    } finally {
      await client.close()
    }
  })()
  return dump
}

/**
 * Runs a statement that needs no other session on a database (CREATE DATABASE … TEMPLATE, ALTER
 * DATABASE … RENAME), retried while Postgres says one is there (55006): a session that just closed
 * can linger a moment before its backend exits.
 */
export async function whileBusy (statement: () => Promise<unknown>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await statement()
      return
    } catch (error) {
      if ((error as { code?: string }).code !== '55006' || attempt >= 20) throw error
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt))
    }
  }
}

// Any constant other than the app's own migration lock: it guards building the template.
const TEMPLATE_LOCK_ID = 7_310_442_020
const templates = new Map<string, Promise<string>>()

/**
 * The name of a migrated template database on that Postgres server, built once (under an advisory
 * lock, so parallel test files wait for the first) by the app's own `migrate()`, and renamed into
 * place only when complete: a run that dies half-way never leaves a half-migrated template behind.
 */
export function postgresTemplate (serverUrl: string): Promise<string> {
  let template = templates.get(serverUrl)
  if (template === undefined) {
    template = buildPostgresTemplate(serverUrl)
    templates.set(serverUrl, template)
  }
  return template
}

async function buildPostgresTemplate (serverUrl: string): Promise<string> {
  const name = `test_template_${currentKey()}`
  const building = `${name}_building`
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} })
  try {
    await admin`select pg_advisory_lock(${TEMPLATE_LOCK_ID})`
    const [present] = await admin`select 1 from pg_database where datname = ${name}`
    if (present === undefined) {
      await admin.unsafe(`drop database if exists ${building} with (force)`)
      await admin.unsafe(`create database ${building}`)
      const url = new URL(serverUrl)
      url.pathname = `/${building}`
      const database = await openDatabase({ databaseUrl: url.toString(), dataDir: 'memory://', poolSize: 1 })
      try {
        await database.migrate()
      } finally {
        await database.close()
      }
      await whileBusy(() => admin.unsafe(`alter database ${building} rename to ${name}`))
    }
    await admin`select pg_advisory_unlock(${TEMPLATE_LOCK_ID})`
  } finally {
    await admin.end({ timeout: 5 })
  }
  return name
}
