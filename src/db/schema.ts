import { sql } from 'drizzle-orm'
import { bigint, boolean, check, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'

export const ROLES = ['user', 'admin'] as const
export type Role = typeof ROLES[number]

/** How a session was established, shown in the session list. */
export const SIGN_IN_METHODS = ['password', 'password+totp', 'recovery_code', 'passkey', 'oidc'] as const
export type SignInMethod = typeof SIGN_IN_METHODS[number]

// Millisecond precision: JavaScript Dates carry milliseconds, so a keyset cursor built from a Date
// must compare equal to the stored value, or rows sharing a millisecond would be skipped.
const moment = (name: string) => timestamp(name, { withTimezone: true, precision: 3 })

export const users = pgTable('users', {
  id: uuid('id').primaryKey().defaultRandom(),
  username: text('username').notNull(),
  /** Null for an account created by an identity provider until its owner sets a password. */
  passwordHash: text('password_hash'),
  role: text('role').$type<Role>().notNull().default('user'),
  createdAt: moment('created_at').notNull().defaultNow(),
  /** The TOTP secret, AES-256-GCM under ENCRYPTION_KEY (see src/secret-box.ts): a database copy alone yields no code. */
  totpSecret: text('totp_secret'),
  /** Null while an enrolment awaits its first code: the secret exists but is not yet a factor. */
  totpEnabledAt: moment('totp_enabled_at'),
  /**
   * The newest TOTP time step accepted: a code is taken only for a later step, by one conditional
   * update, so the same code sent twice at once has exactly one winner.
   */
  totpLastStep: bigint('totp_last_step', { mode: 'number' }),
  /**
   * The user's verified address (null: none). Only ever set by using a verification link, so it
   * is verified whenever it is present; an address awaiting verification lives in its one-time
   * secret, never here.
   */
  email: text('email'),
  emailVerifiedAt: moment('email_verified_at'),
}, (table) => [
  // Case-insensitive uniqueness lives in the database, so concurrent registrations cannot both win.
  uniqueIndex('users_username_lower_key').on(sql`lower(${table.username})`),
  // The same for addresses: two verifications of one address at once cannot both win.
  uniqueIndex('users_email_lower_key').on(sql`lower(${table.email})`),
  check('users_role_check', sql`${table.role} in ('user', 'admin')`),
  index('users_created_at_id_idx').on(table.createdAt.desc(), table.id.desc()),
])

export const sessions = pgTable('sessions', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  createdAt: moment('created_at').notNull().defaultNow(),
  lastUsedAt: moment('last_used_at').notNull().defaultNow(),
  /** Idle limit: moved forward by each refresh, never past `absoluteExpiresAt`. */
  expiresAt: moment('expires_at').notNull(),
  /** SESSION_MAX_AGE after sign-in, whatever the refreshes. */
  absoluteExpiresAt: moment('absolute_expires_at').notNull(),
  revokedAt: moment('revoked_at'),
  userAgent: text('user_agent'),
  ip: text('ip'),
  method: text('method').$type<SignInMethod>().notNull().default('password'),
}, (table) => [
  index('sessions_user_id_idx').on(table.userId),
  check('sessions_method_check', sql`${table.method} in ('password', 'password+totp', 'recovery_code', 'passkey', 'oidc')`),
])

/**
 * A user's current recovery codes (10 at a time). Each has at least 120 random bits, so a plain
 * SHA-256 is enough (ASVS 6.5.2 asks a slow salted hash only below 112 bits), and using one is a
 * single conditional update: the same code twice at once has one winner.
 */
export const recoveryCodes = pgTable('recovery_codes', {
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  codeHash: text('code_hash').notNull(),
  createdAt: moment('created_at').notNull().defaultNow(),
  usedAt: moment('used_at'),
}, (table) => [
  primaryKey({ columns: [table.userId, table.codeHash] }),
])

/**
 * A user's passkeys (WebAuthn credentials), several per user, each with a name. Only the public key
 * is kept: a copy of this table signs nobody in. `counter` is the authenticator's signature counter
 * (0 for the synced passkeys that keep none); one that goes backwards is a cloned key.
 */
export const passkeys = pgTable('passkeys', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  /** The credential id as the browser sends it (base64url): the key of every sign-in. */
  credentialId: text('credential_id').notNull(),
  /** The COSE public key, base64url. */
  publicKey: text('public_key').notNull(),
  counter: bigint('counter', { mode: 'number' }).notNull().default(0),
  transports: jsonb('transports').$type<string[]>().notNull().default([]),
  name: text('name').notNull(),
  /** `multiDevice` (synced, e.g. by a password manager) or `singleDevice` (bound to one authenticator). */
  deviceType: text('device_type').notNull(),
  backedUp: boolean('backed_up').notNull().default(false),
  aaguid: text('aaguid'),
  createdAt: moment('created_at').notNull().defaultNow(),
  lastUsedAt: moment('last_used_at'),
}, (table) => [
  // One credential belongs to one account, decided by the database even for two registrations at once.
  uniqueIndex('passkeys_credential_id_key').on(table.credentialId),
  index('passkeys_user_id_idx').on(table.userId),
])

/**
 * Every refresh token a session was given, newest last: the rotation chain. Only a SHA-256 hash is
 * kept; a stolen database copy yields no usable token. A token that was replaced and shows up again
 * after the grace period is proof of theft.
 */
export const refreshTokens = pgTable('refresh_tokens', {
  tokenHash: text('token_hash').primaryKey(),
  sessionId: uuid('session_id').notNull().references(() => sessions.id, { onDelete: 'cascade' }),
  createdAt: moment('created_at').notNull().defaultNow(),
  replacedAt: moment('replaced_at'),
  /**
   * The hash of the token that replaced this one. Only the token the session's newest one replaced
   * is honoured within the grace: anything two or more rotations old is reuse, however recent.
   */
  replacedBy: text('replaced_by'),
}, (table) => [
  index('refresh_tokens_session_id_idx').on(table.sessionId),
])

export const tasks = pgTable('tasks', {
  id: uuid('id').primaryKey().defaultRandom(),
  ownerId: uuid('owner_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  title: text('title').notNull(),
  description: text('description').notNull().default(''),
  done: boolean('done').notNull().default(false),
  createdAt: moment('created_at').notNull().defaultNow(),
  updatedAt: moment('updated_at').notNull().defaultNow(),
}, (table) => [
  // Serves the owner's newest-first keyset page in one index range scan.
  index('tasks_owner_created_id_idx').on(table.ownerId, table.createdAt.desc(), table.id.desc()),
])

/** Kept when a user is deleted (no foreign keys): the record of what happened must outlive its subject. */
export const auditEvents = pgTable('audit_events', {
  id: uuid('id').primaryKey().defaultRandom(),
  at: moment('at').notNull().defaultNow(),
  type: text('type').notNull(),
  userId: uuid('user_id'),
  actorId: uuid('actor_id'),
  ip: text('ip'),
  detail: jsonb('detail').$type<Record<string, unknown>>().notNull().default({}),
}, (table) => [
  index('audit_events_at_id_idx').on(table.at.desc(), table.id.desc()),
  index('audit_events_user_id_idx').on(table.userId),
])

/**
 * Every one-time secret the API hands out (mailed links, pending sign-ins, passkey challenges, OIDC
 * flow state and codes) has one shape: the value is given out once, only its SHA-256 is kept, it
 * expires, and using it is one conditional update, so two uses at once have one winner. `kind` keeps
 * each purpose's values apart; `data` holds what the flow needs back (never the secret itself).
 */
export const oneTimeSecrets = pgTable('one_time_secrets', {
  secretHash: text('secret_hash').primaryKey(),
  kind: text('kind').notNull(),
  userId: uuid('user_id').references(() => users.id, { onDelete: 'cascade' }),
  data: jsonb('data').$type<Record<string, unknown>>().notNull().default({}),
  attempts: integer('attempts').notNull().default(0),
  createdAt: moment('created_at').notNull().defaultNow(),
  expiresAt: moment('expires_at').notNull(),
  usedAt: moment('used_at'),
}, (table) => [
  index('one_time_secrets_user_kind_idx').on(table.userId, table.kind),
  index('one_time_secrets_expires_at_idx').on(table.expiresAt),
])

/**
 * Identities at OpenID providers that sign a user in. The key is (issuer, subject), the only pair a
 * provider promises never to reuse for someone else; the e-mail claim is kept for display alone and
 * never links anything: an attacker's provider account can carry the victim's address.
 */
export const userIdentities = pgTable('user_identities', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  /** The configured provider id (OIDC_PROVIDERS) it was made through, for the account page. */
  provider: text('provider').notNull(),
  issuer: text('issuer').notNull(),
  subject: text('subject').notNull(),
  email: text('email'),
  createdAt: moment('created_at').notNull().defaultNow(),
}, (table) => [
  uniqueIndex('user_identities_issuer_subject_key').on(table.issuer, table.subject),
  index('user_identities_user_id_idx').on(table.userId),
])

/**
 * Mails waiting to be sent, written in the transaction of the change that causes them (a mail is
 * never lost to a crash between the change and the send, nor sent for a change that rolled back).
 * A sender claims due rows with `for update skip locked` and a lease (`claimed_until`): an instance
 * that dies mid-send leaves a lease that runs out, and another instance takes the row up again.
 */
export const mailOutbox = pgTable('mail_outbox', {
  id: uuid('id').primaryKey().defaultRandom(),
  to: text('to').notNull(),
  subject: text('subject').notNull(),
  text: text('text').notNull(),
  html: text('html').notNull(),
  /** Which template made it (e.g. `password_reset`): for logs and metrics, never the address. */
  kind: text('kind').notNull(),
  createdAt: moment('created_at').notNull().defaultNow(),
  /** Not before this moment: moved forward by each failed attempt (exponential backoff). */
  dueAt: moment('due_at').notNull().defaultNow(),
  attempts: integer('attempts').notNull().default(0),
  lastError: text('last_error'),
  claimedUntil: moment('claimed_until'),
  sentAt: moment('sent_at'),
  /** Set when the mail server refused the mail for good (a 5xx) or the attempts ran out: no more tries. */
  gaveUpAt: moment('gave_up_at'),
}, (table) => [
  // The sender's scan: rows still to send, by due time.
  index('mail_outbox_due_idx').on(table.dueAt).where(sql`${table.sentAt} is null and ${table.gaveUpAt} is null`),
])
