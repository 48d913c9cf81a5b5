import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { CookieSerializeOptions } from '@fastify/cookie'
import type { FastifyRequest } from 'fastify'
import * as client from 'openid-client'
import { TransactionRollbackError } from 'drizzle-orm'
import type { OidcProvider } from '../plugins/oidc.js'
import {
  createUserWithUniqueName, findUserByIdentity, linkIdentity, listIdentities, unlinkIdentity, type VerifiedIdentity,
} from '../src/db/queries/identities.js'
import { consumeSecret, issueSecret } from '../src/db/queries/one-time-secrets.js'
import { findUserById, hasPassword, setFirstPassword } from '../src/db/queries/users.js'
import {
  CommonPassword, IdentityNotFound, LastWayToSignIn, OidcFailed, OidcLinkFailed, OidcNotStartedHere, PasswordAlreadySet, ProviderNotFound,
} from '../src/errors.js'
import { auditAndNotify } from '../src/mail/notify.js'
import { hashPassword, isCommonPassword } from '../src/passwords.js'
import { usernameFromClaims, type NameClaims } from '../src/oidc-username.js'
import { DateTime, failures, IdParams, MfaChallengeSchema, NoContent, Password, settingCookies, signedIn, UserSchema } from '../src/schemas.js'
import { afterPassword } from '../src/sign-in.js'
import { sameSecret } from '../src/constant-time.js'

// The flow waits this long for the person at the provider (a password, a second factor, consent).
const FLOW_TTL_SECONDS = 600
// The frontend exchanges its code at once, on landing.
const CODE_TTL_SECONDS = 60

// Any short name: one that is not configured is a 404, as the contract says, not a 400.
const ProviderParams = Type.Object({ provider: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false })
const Identity = Type.Object({
  id: Type.String({ format: 'uuid' }),
  provider: Type.String({ description: 'the provider id it was linked through' }),
  email: Type.Union([Type.String(), Type.Null()], { description: "the provider's e-mail claim, for display only" }),
  createdAt: DateTime,
})

// The frontend's proof that a code comes back to the browser that started its flow (the PKCE
// idea, between the frontend and us): the page keeps a random verifier, sends its S256 hash to
// /start or /link, and the verifier itself with the code.
const Challenge = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'base64url SHA-256 of a random verifier the frontend keeps; the exchange must then send it' })
const Verifier = Type.String({ pattern: '^[A-Za-z0-9_-]{43,128}$', description: 'the verifier whose hash the start carried' })
const ChallengeQuery = { challenge: Type.Optional(Challenge) }

/** What the flow keeps server-side between the start and the callback (the `state` is its key). */
interface FlowData { provider: string, sealedVerifier: string, nonce: string, bound: boolean, linkUserId: string | null, challenge: string | null }
/** What the one-time code carries from the callback to the exchange. */
interface CodeData extends VerifiedIdentity { baseName: string, linkUserId: string | null, challenge: string | null }

/**
 * Sign-in with an identity provider. The provider's callback is a top-level visit to the API's
 * site, where a Partitioned cookie would land in the API's own partition, not the frontend's: so
 * the callback sets no session cookie; it hands the frontend a one-time code, and the frontend's
 * own cross-site fetch of /oidc/exchange receives the cookies where they are used.
 */
const oidcRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app

  // Binds a sign-in flow to the browser that started it: a callback URL an attacker completed with
  // their own provider account, sent to a victim, finds no such cookie there (login CSRF). Lax, not
  // Partitioned: the start and the callback are both top-level visits to the API's own site.
  const flowCookieName = config.cookieSecure ? '__Secure-oidc_flow' : 'oidc_flow'
  const flowCookie: CookieSerializeOptions = {
    path: '/api/auth/oidc', httpOnly: true, secure: config.cookieSecure, sameSite: 'lax', maxAge: FLOW_TTL_SECONDS,
  }

  function providerOf (id: string): OidcProvider {
    const provider = app.oidcProviders.get(id)
    if (provider === undefined) throw new ProviderNotFound()
    return provider
  }

  const landing = (query: Record<string, string>) => `${config.appUrl}/#/oidc?${new URLSearchParams(query).toString()}`

  /** Stores the flow and answers the provider's authorization URL (code flow, PKCE S256, state, nonce). */
  async function beginFlow (provider: OidcProvider, linkUserId: string | null, bound: boolean, challenge: string | undefined): Promise<{ url: string, state: string }> {
    const verifier = client.randomPKCECodeVerifier()
    const nonce = client.randomNonce()
    // The one-time secret's value is the `state`: only its hash is stored, and the callback finds
    // the flow by it. The verifier is sealed too: a copy of the database alone cannot finish a flow.
    const data: FlowData = {
      provider: provider.id, sealedVerifier: app.secretBox.seal(verifier, 'oidc_flow'), nonce, bound, linkUserId, challenge: challenge ?? null,
    }
    const state = await issueSecret(app.db, { kind: 'oidc_flow', userId: linkUserId, ttlSeconds: FLOW_TTL_SECONDS, data: { ...data } })
    const url = client.buildAuthorizationUrl(provider.configuration, {
      redirect_uri: provider.redirectUri,
      scope: 'openid email profile',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    })
    return { url: url.href, state }
  }

  /**
   * The name and address for a new account. Many providers put them in the ID token; others (and
   * oidc-provider by default) only in the userinfo answer, which openid-client checks belongs to the
   * same subject. Only for display and the username: a failure here fails nothing.
   */
  async function profileClaims (provider: OidcProvider, accessToken: string, idToken: client.IDToken): Promise<Record<string, unknown>> {
    if (['email', 'preferred_username', 'name'].some((claim) => typeof idToken[claim] === 'string')) return {}
    if (provider.configuration.serverMetadata().userinfo_endpoint === undefined) return {}
    try {
      return await client.fetchUserInfo(provider.configuration, accessToken, idToken.sub)
    } catch (error) {
      app.log.warn({ provider: provider.id, err: { message: (error as Error).message } }, 'identity provider: userinfo failed; the account gets a generic name')
      return {}
    }
  }

  /**
   * Whether a code comes back to the browser that started its flow. A flow begun with a
   * challenge needs its verifier. A verifier sent with a code whose flow had none means the code was
   * planted in that browser: an attacker's own finished sign-in, sent to a victim so that the victim
   * works in the attacker's account (login CSRF). A client that sends neither (curl, the contract's
   * bare `{code}`) still signs in.
   */
  async function startedHere (challenge: string | null, verifier: string | undefined): Promise<boolean> {
    if (challenge === null) return verifier === undefined
    return verifier !== undefined && sameSecret(await client.calculatePKCECodeChallenge(verifier), challenge)
  }

  /** The signed-in caller, or undefined: tokenRequired's checks without its 401. */
  async function callerOrUndefined (request: FastifyRequest): Promise<string | undefined> {
    try {
      await app.tokenRequired()(request)
      return request.user.id
    } catch {
      return undefined
    }
  }

  app.get('/oidc/providers', {
    schema: {
      tags: ['oidc'],
      summary: 'The identity providers one can sign in with',
      response: { 200: Type.Object({ items: Type.Array(Type.Object({ id: Type.String(), name: Type.String() })) }) },
    },
  }, async () => {
    return { items: [...app.oidcProviders.values()].map(({ id, name }) => ({ id, name })) }
  })

  app.get('/oidc/:provider/start', {
    schema: {
      tags: ['oidc'],
      summary: 'Go to the provider to sign in (a top-level navigation, not a fetch)',
      description: '`link=1` links the identity to the signed-in caller instead; that needs the session cookie on this visit, so a frontend on another site uses POST /api/auth/oidc/{provider}/link.',
      params: ProviderParams,
      querystring: Type.Object({ link: Type.Union([Type.Literal('0'), Type.Literal('1')], { default: '0' }), ...ChallengeQuery }, { additionalProperties: false }),
      response: { 302: Type.Null({ description: 'to the provider, or to APP_URL/#/oidc?error=sign_in_first for link=1 without a session' }), ...failures({ 404: '`OIDC_PROVIDER_NOT_FOUND`' }) },
    },
  }, async (request, reply) => {
    const provider = providerOf(request.params.provider)
    let linkUserId: string | null = null
    if (request.query.link === '1') {
      linkUserId = await callerOrUndefined(request) ?? null
      if (linkUserId === null) return reply.redirect(landing({ error: 'sign_in_first' }), 302)
    }
    const { url, state } = await beginFlow(provider, linkUserId, true, request.query.challenge)
    reply.setCookie(flowCookieName, state, flowCookie)
    return reply.redirect(url, 302)
  })

  app.post('/oidc/:provider/link', {
    preHandler: app.tokenRequired(),
    schema: {
      tags: ['oidc'],
      summary: 'Start linking an identity to the caller: the URL to send the browser to',
      description: 'Contract extension: a frontend on another site cannot send its (partitioned) session cookie on a top-level visit to /start, so it asks here with fetch and then navigates to `url`. The link completes at POST /api/auth/oidc/exchange, signed in as the same user.',
      security: signedIn,
      params: ProviderParams,
      querystring: Type.Object(ChallengeQuery, { additionalProperties: false }),
      response: { 200: Type.Object({ url: Type.String() }), ...failures({ 404: '`OIDC_PROVIDER_NOT_FOUND`' }) },
    },
  }, async (request) => {
    const provider = providerOf(request.params.provider)
    const { url } = await beginFlow(provider, request.user.id, false, request.query.challenge)
    return { url }
  })

  app.get('/oidc/:provider/callback', {
    schema: {
      tags: ['oidc'],
      summary: "The provider's redirect back: on to the frontend with a one-time code",
      params: ProviderParams,
      // The provider's parameters (code, state, iss, error…) are read by openid-client from the URL.
      querystring: Type.Object({ state: Type.Optional(Type.String({ maxLength: 512 })) }),
      response: { 302: Type.Null({ description: 'to APP_URL/#/oidc?code=… (60 s, single use) or APP_URL/#/oidc?error=…' }) },
    },
  }, async (request, reply) => {
    // The flow cookie has done its work whatever happens next.
    if (request.cookies[flowCookieName] !== undefined) reply.setCookie(flowCookieName, '', { ...flowCookie, maxAge: 0 })
    const fail = (reason: string, details: Record<string, unknown> = {}) => {
      app.metrics.signIns.inc({ method: 'oidc', outcome: 'failure' })
      request.log.warn({ provider: request.params.provider, reason, ...details }, 'identity-provider sign-in refused')
      return reply.redirect(landing({ error: reason }), 302)
    }
    const provider = app.oidcProviders.get(request.params.provider)
    if (provider === undefined) return fail('unknown_provider')
    const state = request.query.state
    // Used up here, whatever follows: a callback URL works once.
    const flow = state === undefined || state === '' ? undefined : await consumeSecret(app.db, 'oidc_flow', state)
    const data = flow?.data as FlowData | undefined
    if (state === undefined || data === undefined || data.provider !== provider.id) return fail('invalid_state')
    if (data.bound) {
      const cookie = request.cookies[flowCookieName]
      if (cookie === undefined || !sameSecret(cookie, state)) return fail('invalid_state', { cause: 'no flow cookie from this browser' })
    }
    const currentUrl = new URL(provider.redirectUri)
    currentUrl.search = request.url.slice(request.url.indexOf('?'))
    if (currentUrl.searchParams.has('error')) return fail('provider_refused', { error: currentUrl.searchParams.get('error') })

    let claims: client.IDToken | undefined
    let accessToken: string
    try {
      const tokens = await client.authorizationCodeGrant(provider.configuration, currentUrl, {
        pkceCodeVerifier: app.secretBox.open(data.sealedVerifier, 'oidc_flow'),
        expectedState: state,
        expectedNonce: data.nonce,
        idTokenExpected: true,
      })
      claims = tokens.claims()
      accessToken = tokens.access_token
    } catch (error) {
      // openid-client checked the ID token's signature, issuer, audience, nonce and expiry; its
      // message is generic, the cause's names the claim that did not match.
      const { message, code, cause } = error as Error & { code?: unknown }
      return fail('verification_failed', { err: { message, code, cause: (cause as Error | undefined)?.message } })
    }
    if (claims === undefined) return fail('verification_failed')
    const profile = { ...await profileClaims(provider, accessToken, claims), ...claims }
    const email = typeof profile.email === 'string' ? profile.email.slice(0, 320) : null
    const codeData: CodeData = {
      provider: provider.id,
      issuer: claims.iss,
      subject: claims.sub,
      email,
      baseName: usernameFromClaims(profile as NameClaims),
      linkUserId: data.linkUserId,
      // `?? null`: a flow stored before challenges existed has no such key.
      challenge: data.challenge ?? null,
    }
    const code = await issueSecret(app.db, { kind: 'oidc_code', userId: data.linkUserId, ttlSeconds: CODE_TTL_SECONDS, data: { ...codeData } })
    return reply.redirect(landing({ code }), 302)
  })

  /** Finds the identity's account, or makes one (never by e-mail address: by issuer and subject alone). */
  async function accountFor (request: FastifyRequest, identity: VerifiedIdentity, baseName: string) {
    const found = await findUserByIdentity(app.db, identity.issuer, identity.subject)
    if (found !== undefined) return found
    try {
      return await app.db.transaction(async (tx) => {
        const user = await createUserWithUniqueName(tx, baseName)
        // Undefined: the same identity's first sign-in in another tab linked it first (the unique
        // index made this insert wait for that commit). This account is rolled back, never kept
        // without a way in.
        if (await linkIdentity(tx, user.id, identity) === undefined) tx.rollback()
        await request.audit(tx, 'register', { userId: user.id, actorId: user.id, detail: { method: 'oidc', provider: identity.provider } })
        return { ...user, totpOn: false }
      })
    } catch (error) {
      if (!(error instanceof TransactionRollbackError)) throw error
      const made = await findUserByIdentity(app.db, identity.issuer, identity.subject)
      if (made === undefined) throw error
      return made
    }
  }

  async function finishLink (request: FastifyRequest, linkUserId: string, identity: VerifiedIdentity) {
    // The session exchanging the code must be the one that started the linking: a link flow sent to
    // someone else's browser links nothing.
    if (await callerOrUndefined(request) !== linkUserId) throw new OidcLinkFailed()
    const linked = await app.db.transaction(async (tx) => {
      const link = await linkIdentity(tx, linkUserId, identity)
      // Linking an identity one already has changes nothing, and records nothing.
      if (link?.created === true) await request.audit(tx, 'oidc_linked', { userId: linkUserId, actorId: linkUserId, detail: { provider: identity.provider, identityId: link.row.id } })
      return link?.row
    })
    if (linked === undefined) throw new OidcLinkFailed()
    const user = await findUserById(app.db, linkUserId)
    if (user === undefined) throw new OidcLinkFailed()
    return { user, linked }
  }

  app.post('/oidc/exchange', {
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['oidc'],
      summary: 'Turn the one-time code from the callback into a session (or a linked identity)',
      description: 'Sign-in: answers like /login (the cookies, or `mfaRequired` for a user with TOTP). A linking code answers `{user, linked}` and needs the session that started the linking.',
      body: Type.Object({ code: Type.String({ minLength: 1, maxLength: 200 }), verifier: Type.Optional(Verifier) }, { additionalProperties: false }),
      response: {
        200: settingCookies(Type.Union([Type.Object({ user: UserSchema, linked: Type.Optional(Identity) }), MfaChallengeSchema]),
          'Sets the access and refresh cookies, or (second factor owed) the pending sign-in cookie; nothing for a linking code'),
        ...failures({ 401: '`OIDC_FAILED`: the code is unknown, expired or used; its flow began with a challenge this verifier does not answer (or without one, and a verifier came); or a linking code from another session' }),
      },
    },
  }, async (request, reply) => {
    const secret = await consumeSecret(app.db, 'oidc_code', request.body.code)
    if (secret === undefined) {
      app.metrics.signIns.inc({ method: 'oidc', outcome: 'failure' })
      throw new OidcFailed()
    }
    const { baseName, linkUserId, challenge, ...identity } = secret.data as unknown as CodeData
    if (!await startedHere(challenge ?? null, request.body.verifier)) {
      app.metrics.signIns.inc({ method: 'oidc', outcome: 'failure' })
      throw new OidcNotStartedHere()
    }
    if (linkUserId !== null) return finishLink(request, linkUserId, identity)
    const user = await accountFor(request, identity, baseName)
    return afterPassword(app, request, reply, user, 'browser', 'oidc')
  })

  app.get('/oidc/identities', {
    preHandler: app.tokenRequired(),
    schema: {
      tags: ['oidc'],
      summary: "The caller's linked identities",
      description: 'Contract extension: `hasPassword` tells the account page whether to offer "set a password" (POST /api/auth/password/set).',
      security: signedIn,
      response: { 200: Type.Object({ items: Type.Array(Identity), hasPassword: Type.Boolean() }) },
    },
  }, async (request) => {
    const { id } = request.user
    return { items: await listIdentities(app.db, id), hasPassword: await hasPassword(app.db, id) }
  })

  app.delete('/oidc/identities/:id', {
    preHandler: app.tokenRequired(),
    schema: {
      tags: ['oidc'],
      summary: 'Unlink one of the caller\'s identities',
      security: signedIn,
      params: IdParams,
      response: {
        204: NoContent,
        ...failures({ 404: '`IDENTITY_NOT_FOUND`: not one of yours', 409: '`LAST_SIGN_IN_METHOD`: no password and no other identity' }),
      },
    },
  }, async (request, reply) => {
    const userId = request.user.id
    await app.db.transaction(async (tx) => {
      const result = await unlinkIdentity(tx, userId, request.params.id)
      if (result.outcome === 'not_found') throw new IdentityNotFound()
      if (result.outcome === 'last_way') throw new LastWayToSignIn()
      await request.audit(tx, 'oidc_unlinked', { userId, actorId: userId, detail: { provider: result.identity.provider, identityId: result.identity.id } })
    })
    return reply.code(204).send(null)
  })

  // Contract extension: an account made by a provider has no password until its owner sets one.
  app.post('/password/set', {
    preHandler: app.tokenRequired(),
    // An account made by a provider needs a password before it can turn TOTP on (enrolment asks for it).
    config: { rateLimitKind: 'credentials', duringEnrolment: true },
    schema: {
      tags: ['auth'],
      summary: 'Set a first password on an account that has none (made by an identity provider)',
      security: signedIn,
      body: Type.Object({ newPassword: Password }, { additionalProperties: false }),
      response: {
        204: NoContent,
        ...failures({ 400: '`FST_ERR_VALIDATION` or `PASSWORD_TOO_COMMON`', 409: '`PASSWORD_ALREADY_SET`: change it with POST /api/auth/password' }),
      },
    },
  }, async (request, reply) => {
    const { id } = request.user
    // Checked before hashing, so that the common answer costs nothing; the update below decides.
    if (await hasPassword(app.db, id)) throw new PasswordAlreadySet()
    if (isCommonPassword(request.body.newPassword)) throw new CommonPassword()
    const passwordHash = await hashPassword(request.body.newPassword)
    await app.db.transaction(async (tx) => {
      // One conditional update: it only sets a password where there is none, even two requests at once.
      if (!await setFirstPassword(tx, id, passwordHash)) throw new PasswordAlreadySet()
      // Told like any password change: a hijacked session could otherwise plant a password unnoticed.
      await auditAndNotify(tx, request, id, 'password_changed', { first: true })
    })
    return reply.code(204).send(null)
  })
}

export default oidcRoutes
