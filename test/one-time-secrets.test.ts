import t from 'tap'
import { sql } from 'drizzle-orm'
import {
  consumeSecret, findLiveSecret, hashSecret, issueSecret, recordFailedAttempt, voidSecrets,
} from '../src/db/queries/one-time-secrets.js'
import { oneTimeSecrets } from '../src/db/schema.js'
import { buildTestApp, openTestDatabase, signIn } from './helpers/app.js'

t.test('one-time secrets: hashed at rest, single use, kind-bound, expiring, superseded', async (t) => {
  const app = await buildTestApp(t)
  const { db } = app
  const alice = await signIn(app)

  const value = await issueSecret(db, { kind: 'password_reset', userId: alice.id, ttlSeconds: 60, data: { why: 'test' } })
  t.ok(value.length >= 43, 'at least 256 bits, URL-safe')
  const stored = await db.select({ hash: oneTimeSecrets.secretHash }).from(oneTimeSecrets)
  t.same(stored.map((row) => row.hash), [hashSecret(value)], 'only the hash is stored')
  t.equal(await consumeSecret(db, 'email_verification', value), undefined, 'another kind does not accept it')
  t.match(await findLiveSecret(db, 'password_reset', value), { userId: alice.id, data: { why: 'test' } }, 'readable while live')

  const both = await Promise.all([consumeSecret(db, 'password_reset', value), consumeSecret(db, 'password_reset', value)])
  t.equal(both.filter((row) => row !== undefined).length, 1, 'two uses at once: exactly one wins')
  t.equal(await consumeSecret(db, 'password_reset', value), undefined, 'a used secret is refused')

  const older = await issueSecret(db, { kind: 'email_verification', userId: alice.id, ttlSeconds: 60 })
  const newer = await issueSecret(db, { kind: 'email_verification', userId: alice.id, ttlSeconds: 60, supersede: true })
  t.equal(await consumeSecret(db, 'email_verification', older), undefined, 'a newer secret voids the older one')
  t.ok(await consumeSecret(db, 'email_verification', newer), 'the newer one works')

  const expiring = await issueSecret(db, { kind: 'mfa_pending', userId: alice.id, ttlSeconds: 60 })
  await db.update(oneTimeSecrets).set({ expiresAt: sql`now() - interval '1 second'` })
    .where(sql`${oneTimeSecrets.secretHash} = ${hashSecret(expiring)}`)
  t.equal(await consumeSecret(db, 'mfa_pending', expiring), undefined, 'an expired secret is refused')

  const pending = await issueSecret(db, { kind: 'mfa_pending', userId: alice.id, ttlSeconds: 60 })
  t.equal(await recordFailedAttempt(db, 'mfa_pending', pending, 3), 1)
  t.equal(await recordFailedAttempt(db, 'mfa_pending', pending, 3), 2)
  t.equal(await recordFailedAttempt(db, 'mfa_pending', pending, 3), 3, 'the last allowed attempt is counted')
  t.equal(await findLiveSecret(db, 'mfa_pending', pending), undefined, 'and it used the secret up')
  t.equal(await recordFailedAttempt(db, 'mfa_pending', pending, 3), undefined)

  const a = await issueSecret(db, { kind: 'mfa_pending', userId: alice.id, ttlSeconds: 60 })
  t.equal(await voidSecrets(db, alice.id, 'mfa_pending'), 1)
  t.equal(await consumeSecret(db, 'mfa_pending', a), undefined, 'voided')
})

t.test('a secret without a user (an OIDC flow) works the same', async (t) => {
  const { database } = await openTestDatabase(t)
  await database.migrate()
  const value = await issueSecret(database.db, { kind: 'oidc_flow', userId: null, ttlSeconds: 600, data: { nonce: 'n' } })
  t.match(await consumeSecret(database.db, 'oidc_flow', value), { userId: null, data: { nonce: 'n' } })
})
