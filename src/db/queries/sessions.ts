import { createHash, randomBytes } from 'node:crypto'
import { and, desc, eq, gt, inArray, isNull, ne, or, sql } from 'drizzle-orm'
import type { Db } from '../client.js'
import { refreshTokens, sessions, users, type SignInMethod } from '../schema.js'
import { publicUser, type UserRow } from './users.js'

export interface SessionLimits {
  /** Seconds a session may stay unused before its refresh token dies. */
  readonly refreshTokenTtl: number
  /** Seconds a session may live in all, whatever the refreshes. */
  readonly sessionMaxAge: number
  /** Seconds a just-replaced refresh token is still honoured (tabs racing). */
  readonly refreshReuseGrace: number
}

/** The signed-in caller as an access token names them: a user and one of their sessions. */
export interface Caller { userId: string, sessionId: string }

export interface ClientInfo {
  readonly userAgent: string | null
  readonly ip: string | null
  /** How the user proved who they are; shown in the session list. */
  readonly method: SignInMethod
}

/** 32 random bytes for the cookie; only their SHA-256 reaches the database. */
export function newRefreshToken (): { token: string, tokenHash: string } {
  const token = randomBytes(32).toString('base64url')
  return { token, tokenHash: hashRefreshToken(token) }
}

export function hashRefreshToken (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

const secondsFromNow = (seconds: number, now = Date.now()) => new Date(now + seconds * 1000)

/** A browser session: a session row and its first refresh token. */
export async function createBrowserSession (db: Db, userId: string, client: ClientInfo, limits: SessionLimits) {
  const now = Date.now()
  const absoluteExpiresAt = secondsFromNow(limits.sessionMaxAge, now)
  const idleExpiresAt = secondsFromNow(limits.refreshTokenTtl, now)
  const [session] = await db.insert(sessions).values({
    userId,
    userAgent: client.userAgent,
    ip: client.ip,
    method: client.method,
    absoluteExpiresAt,
    expiresAt: idleExpiresAt < absoluteExpiresAt ? idleExpiresAt : absoluteExpiresAt,
  }).returning({ id: sessions.id })
  const refresh = newRefreshToken()
  await db.insert(refreshTokens).values({ tokenHash: refresh.tokenHash, sessionId: session!.id })
  return { sessionId: session!.id, refreshToken: refresh.token }
}

/**
 * A session for a Bearer client (`POST /token`): no refresh token, and it ends with its access
 * token, yet it can still be listed and revoked like any other.
 */
export async function createTokenSession (db: Db, userId: string, client: ClientInfo, lifetimeSeconds: number) {
  const expiresAt = secondsFromNow(lifetimeSeconds)
  const [session] = await db.insert(sessions).values({
    userId, userAgent: client.userAgent, ip: client.ip, method: client.method, expiresAt, absoluteExpiresAt: expiresAt,
  }).returning({ id: sessions.id })
  return { sessionId: session!.id }
}

const isActive = () => and(
  isNull(sessions.revokedAt),
  gt(sessions.expiresAt, sql`now()`),
  gt(sessions.absoluteExpiresAt, sql`now()`)
)

/** That session, if it belongs to that user and is neither revoked nor expired (values or placeholders). */
export function activeSession (who: { sessionId: unknown, userId: unknown }) {
  return and(eq(sessions.id, who.sessionId as string), eq(sessions.userId, who.userId as string), isActive())
}

/**
 * The hot path of every authenticated request: the session, if still alive, with its user's
 * current role, in one round trip. Prepared once per database so Postgres plans it once.
 */
export function prepareActiveSessionUser (db: Db) {
  return db
    .select({ ...publicUser, sessionId: sessions.id })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(activeSession({ sessionId: sql.placeholder('sessionId'), userId: sql.placeholder('userId') }))
    .prepare('active_session_user')
}

export type RefreshOutcome =
  | { kind: 'rotated', sessionId: string, user: UserRow, refreshToken: string }
  | { kind: 'grace', sessionId: string, user: UserRow }
  | { kind: 'reused', sessionId: string, userId: string }
  | { kind: 'invalid' }

/**
 * Exchanges a refresh token for a new one. The session row is locked first, so two refreshes with
 * one token take turns: the first rotates, the second finds the token just replaced and, within the
 * grace period, is honoured without a new refresh token. A replaced token seen after the grace is
 * theft (or a very stale tab): the whole session is revoked.
 */
export async function rotateRefreshToken (db: Db, presented: string, limits: SessionLimits): Promise<RefreshOutcome> {
  const tokenHash = hashRefreshToken(presented)
  return db.transaction(async (tx) => {
    const [session] = await tx.select().from(sessions)
      .where(inArray(sessions.id, tx.select({ id: refreshTokens.sessionId }).from(refreshTokens).where(eq(refreshTokens.tokenHash, tokenHash))))
      .for('update')
    if (!session) return { kind: 'invalid' }
    // Read after the lock: a concurrent rotation that committed while we waited is visible now.
    const [token] = await tx.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, tokenHash))
    const now = new Date()
    if (!token || session.revokedAt !== null || session.expiresAt <= now || session.absoluteExpiresAt <= now) {
      return { kind: 'invalid' }
    }
    if (token.replacedAt !== null) {
      const replacedMsAgo = now.getTime() - token.replacedAt.getTime()
      // Honoured only when its successor is the session's newest token: a tab that lost a race holds
      // the token one step back, never two. Anything older is theft, however recent.
      const [successor] = token.replacedBy === null
        ? []
        : await tx.select({ replacedAt: refreshTokens.replacedAt }).from(refreshTokens).where(eq(refreshTokens.tokenHash, token.replacedBy))
      const isOneStepBack = successor !== undefined && successor.replacedAt === null
      if (!isOneStepBack || replacedMsAgo > limits.refreshReuseGrace * 1000) {
        await tx.update(sessions).set({ revokedAt: now }).where(eq(sessions.id, session.id))
        return { kind: 'reused', sessionId: session.id, userId: session.userId }
      }
      const [user] = await tx.select(publicUser).from(users).where(eq(users.id, session.userId))
      return user ? { kind: 'grace', sessionId: session.id, user } : { kind: 'invalid' }
    }
    const [user] = await tx.select(publicUser).from(users).where(eq(users.id, session.userId))
    if (!user) return { kind: 'invalid' }
    const next = newRefreshToken()
    const idleExpiresAt = secondsFromNow(limits.refreshTokenTtl, now.getTime())
    await tx.update(refreshTokens).set({ replacedAt: now, replacedBy: next.tokenHash }).where(eq(refreshTokens.tokenHash, tokenHash))
    await tx.insert(refreshTokens).values({ tokenHash: next.tokenHash, sessionId: session.id })
    await tx.update(sessions).set({
      lastUsedAt: now,
      expiresAt: idleExpiresAt < session.absoluteExpiresAt ? idleExpiresAt : session.absoluteExpiresAt,
    }).where(eq(sessions.id, session.id))
    return { kind: 'rotated', sessionId: session.id, user, refreshToken: next.token }
  })
}

/**
 * Revokes the live session a browser presents when it signs in again (its refresh token, or the
 * session id of an access token the caller verified): a new sign-in must not leave the old session
 * alive behind it. Returns the ids it revoked.
 */
export async function revokePresentedSession (db: Db, presented: { refreshToken?: string | undefined, sessionId?: string | undefined }): Promise<string[]> {
  const bySessionId = presented.sessionId === undefined ? undefined : eq(sessions.id, presented.sessionId)
  const byRefreshToken = presented.refreshToken === undefined
    ? undefined
    : inArray(sessions.id, db.select({ id: refreshTokens.sessionId }).from(refreshTokens).where(eq(refreshTokens.tokenHash, hashRefreshToken(presented.refreshToken))))
  if (bySessionId === undefined && byRefreshToken === undefined) return []
  const revoked = await db.update(sessions).set({ revokedAt: new Date() })
    .where(and(or(bySessionId, byRefreshToken), isNull(sessions.revokedAt)))
    .returning({ id: sessions.id })
  return revoked.map((row) => row.id)
}

/** Revokes one of the user's active sessions; false when there is no such session. */
export async function revokeSession (db: Db, userId: string, sessionId: string): Promise<boolean> {
  const revoked = await db.update(sessions).set({ revokedAt: new Date() })
    .where(and(eq(sessions.id, sessionId), eq(sessions.userId, userId), isActive()))
    .returning({ id: sessions.id })
  return revoked.length > 0
}

/** Revokes every active session of the user but `keepSessionId`; returns how many ended. */
export async function revokeAllSessions (db: Db, userId: string, keepSessionId?: string): Promise<number> {
  const revoked = await db.update(sessions).set({ revokedAt: new Date() })
    .where(and(
      eq(sessions.userId, userId),
      isNull(sessions.revokedAt),
      keepSessionId === undefined ? undefined : ne(sessions.id, keepSessionId)
    ))
    .returning({ id: sessions.id })
  return revoked.length
}

export async function listActiveSessions (db: Db, userId: string) {
  return db.select({
    id: sessions.id,
    createdAt: sessions.createdAt,
    lastUsedAt: sessions.lastUsedAt,
    userAgent: sessions.userAgent,
    ip: sessions.ip,
    method: sessions.method,
  }).from(sessions)
    .where(and(eq(sessions.userId, userId), isActive()))
    .orderBy(desc(sessions.lastUsedAt), desc(sessions.id))
}
