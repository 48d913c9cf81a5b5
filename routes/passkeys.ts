import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server'
import type { FastifyRequest } from 'fastify'
import { accountKeyOfUser } from '../plugins/account-limit.js'
import { openEveryRouteDuringEnrolment } from '../plugins/auth.js'
import {
  credentialsOfUser, deletePasskey, findPasskeyByCredentialId, insertPasskey, listPasskeys, recordPasskeyUse,
} from '../src/db/queries/passkeys.js'
import { findUserById } from '../src/db/queries/users.js'
import { keepsAWayIn } from '../src/db/queries/ways-in.js'
import { LastWayToSignIn, PasskeyInvalid, PasskeyNotFound } from '../src/errors.js'
import { auditAndNotify } from '../src/mail/notify.js'
import {
  authenticationOptions, consumeChallenge, knownTransports, registrationOptions, userHandle, verifyAuthentication, verifyRegistration,
} from '../src/passkeys.js'
import { DateTime, failures, IdParams, NoContent, settingCookies, signedIn, UserEnvelope } from '../src/schemas.js'
import { startSession } from '../src/sign-in.js'

// Base64url as browsers send it (padding tolerated); bounded, since nothing here is hashed yet.
const Base64Url = (maxLength: number) => Type.String({ minLength: 1, maxLength, pattern: '^[A-Za-z0-9_-]+={0,2}$' })
// A credential id is at most 1023 bytes (WebAuthn Level 3): 1364 base64url characters.
const CredentialId = Base64Url(1400)

// The credential as @simplewebauthn/browser hands it over. Extra members are let through, since
// browsers add them over time; the library reads only what it knows, and none is stored as sent.
const open = { additionalProperties: true } as const
const RegistrationResponse = Type.Object({
  id: CredentialId,
  rawId: CredentialId,
  type: Type.Literal('public-key'),
  response: Type.Object({
    clientDataJSON: Base64Url(4096),
    attestationObject: Base64Url(65_536),
    transports: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), { maxItems: 16 })),
  }, open),
  clientExtensionResults: Type.Object({}, open),
}, { ...open, description: 'RegistrationResponseJSON, as startRegistration() of @simplewebauthn/browser returns it' })

const AuthenticationResponse = Type.Object({
  id: CredentialId,
  rawId: CredentialId,
  type: Type.Literal('public-key'),
  response: Type.Object({
    clientDataJSON: Base64Url(4096),
    authenticatorData: Base64Url(16_384),
    signature: Base64Url(2048),
    userHandle: Type.Optional(Base64Url(128)),
  }, open),
  clientExtensionResults: Type.Object({}, open),
}, { ...open, description: 'AuthenticationResponseJSON, as startAuthentication() of @simplewebauthn/browser returns it' })

// What the owner calls it ("Phone", "YubiKey"): printable, no control characters.
const PasskeyName = Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f\\u007f]*\\S[^\\u0000-\\u001f\\u007f]*$', description: '1–64 characters, shown in the list' })

const Passkey = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  createdAt: DateTime,
  lastUsedAt: Type.Union([DateTime, Type.Null()]),
})

// The options go to the browser as the library builds them: listed here for the docs, every other
// member kept (additionalProperties), so the serializer drops nothing the browser needs.
const CreationOptions = Type.Object({
  challenge: Type.String(),
  rp: Type.Object({ id: Type.Optional(Type.String()), name: Type.String() }),
  user: Type.Object({ id: Type.String(), name: Type.String(), displayName: Type.String() }),
  pubKeyCredParams: Type.Array(Type.Unknown()),
  excludeCredentials: Type.Optional(Type.Array(Type.Unknown())),
  authenticatorSelection: Type.Optional(Type.Unknown()),
}, { ...open, description: 'PublicKeyCredentialCreationOptionsJSON, for startRegistration() of @simplewebauthn/browser' })
const RequestOptions = Type.Object({
  challenge: Type.String(),
  rpId: Type.Optional(Type.String()),
  allowCredentials: Type.Optional(Type.Array(Type.Unknown())),
  userVerification: Type.Optional(Type.String()),
}, { ...open, description: 'PublicKeyCredentialRequestOptionsJSON, for startAuthentication() of @simplewebauthn/browser' })

type Ceremony = 'registration' | 'authentication'

/**
 * Passkeys (WebAuthn): registration and listing for a signed-in user, and a sign-in that needs no
 * password and counts as a complete one (user verification is required, so the passkey is both
 * factors). Every failure is the same 401 PASSKEY_INVALID; the audit log says which check failed.
 */
const passkeysRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app
  // A user who must set up a second factor may add a passkey (API.md: /api/auth/passkeys* stay open).
  openEveryRouteDuringEnrolment(app)

  function succeeded (ceremony: Ceremony) {
    app.metrics.passkeyCeremonies.inc({ ceremony, outcome: 'success' })
  }

  async function refuseRegistration (request: FastifyRequest, reason: string): Promise<never> {
    request.log.info({ reason }, 'passkey registration refused')
    app.metrics.passkeyCeremonies.inc({ ceremony: 'registration', outcome: 'failure' })
    throw new PasskeyInvalid()
  }

  /** A failed passkey sign-in: audited, counted, and, where the passkey is known, held against its account. */
  async function refuseSignIn (request: FastifyRequest, reason: string, userId: string | null): Promise<never> {
    if (userId !== null) await app.accountLimit.recordFailure(request, accountKeyOfUser(userId))
    await request.audit(app.db, 'login_failed', { userId, detail: { method: 'passkey', reason } })
    app.metrics.passkeyCeremonies.inc({ ceremony: 'authentication', outcome: 'failure' })
    app.metrics.signIns.inc({ method: 'passkey', outcome: 'failure' })
    throw new PasskeyInvalid()
  }

  app.post('/passkeys/register/options', {
    preHandler: app.tokenRequired(),
    schema: {
      tags: ['passkeys'],
      summary: 'Start adding a passkey: options for navigator.credentials.create()',
      security: signedIn,
      response: { 200: Type.Object({ options: CreationOptions }) },
    },
  }, async (request) => {
    const { id, username } = request.user
    return { options: await registrationOptions(app.db, config, { id, username }, await credentialsOfUser(app.db, id)) }
  })

  app.post('/passkeys/register', {
    preHandler: app.tokenRequired(),
    schema: {
      tags: ['passkeys'],
      summary: 'Finish adding a passkey',
      security: signedIn,
      body: Type.Object({ response: RegistrationResponse, name: Type.Optional(PasskeyName) }, { additionalProperties: false }),
      response: {
        201: Type.Object({ passkey: Passkey }),
        ...failures({ 401: '`PASSKEY_INVALID`: the challenge is unknown, expired, used or another user\'s, or the response does not verify (origin, RP id, user verification, signature)' }),
      },
    },
  }, async (request, reply) => {
    const userId = request.user.id
    const response = request.body.response as RegistrationResponseJSON
    // Used up whatever follows: a failed attempt starts over with new options.
    const challenge = await consumeChallenge(app.db, 'registration', response.response.clientDataJSON)
    if (challenge === undefined || challenge.userId !== userId) return refuseRegistration(request, 'challenge')
    let verification: Awaited<ReturnType<typeof verifyRegistration>>
    try {
      verification = await verifyRegistration(config, response, challenge.challenge)
    } catch (error) {
      return refuseRegistration(request, `verification: ${(error as Error).message}`)
    }
    if (!verification.verified) return refuseRegistration(request, 'verification')
    const info = verification.registrationInfo
    const name = request.body.name?.trim() ?? `Passkey added ${new Date().toISOString().slice(0, 10)}`
    const passkey = await app.db.transaction(async (tx) => {
      const row = await insertPasskey(tx, {
        userId,
        credentialId: info.credential.id,
        publicKey: Buffer.from(info.credential.publicKey).toString('base64url'),
        counter: info.credential.counter,
        transports: knownTransports(info.credential.transports ?? response.response.transports),
        name,
        deviceType: info.credentialDeviceType,
        backedUp: info.credentialBackedUp,
        aaguid: info.aaguid,
      })
      if (row !== undefined) {
        await auditAndNotify(tx, request, userId, 'passkey_added', { passkeyId: row.id, name: row.name })
      }
      return row
    })
    // The credential is registered already (excludeCredentials normally stops that in the browser).
    if (passkey === undefined) return refuseRegistration(request, 'duplicate')
    succeeded('registration')
    return reply.code(201).send({ passkey })
  })

  app.get('/passkeys', {
    preHandler: app.tokenRequired(),
    schema: {
      tags: ['passkeys'],
      summary: "The caller's passkeys",
      security: signedIn,
      response: { 200: Type.Object({ items: Type.Array(Passkey) }) },
    },
  }, async (request) => {
    return { items: await listPasskeys(app.db, request.user.id) }
  })

  app.delete('/passkeys/:id', {
    preHandler: app.tokenRequired(),
    schema: {
      tags: ['passkeys'],
      summary: 'Remove one of the caller\'s passkeys',
      security: signedIn,
      params: IdParams,
      response: { 204: NoContent, ...failures({ 404: '`PASSKEY_NOT_FOUND`: no passkey of yours has this id', 409: '`LAST_SIGN_IN_METHOD`: the account has no password and no identity at a provider, and this is its last passkey' }) },
    },
  }, async (request, reply) => {
    const userId = request.user.id
    await app.db.transaction(async (tx) => {
      // An account made by an identity provider may have no password: its last passkey may be its only way in.
      const keepsOne = await keepsAWayIn(tx, userId, { passkeyId: request.params.id })
      const removed = await deletePasskey(tx, userId, request.params.id)
      if (removed === undefined) throw new PasskeyNotFound()
      if (keepsOne === false) throw new LastWayToSignIn()
      // Beyond API.md's list of notifications: removing the last passkey can leave a password alone.
      await auditAndNotify(tx, request, userId, 'passkey_removed', { passkeyId: removed.id, name: removed.name })
    })
    return reply.code(204).send(null)
  })

  app.post('/passkeys/login/options', {
    // Each call stores a challenge: limited per address like the sign-in it begins.
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['passkeys'],
      summary: 'Start a passkey sign-in: options for navigator.credentials.get() (discoverable, no username)',
      body: Type.Optional(Type.Object({}, { additionalProperties: false })),
      response: { 200: Type.Object({ options: RequestOptions }) },
    },
  }, async () => {
    return { options: await authenticationOptions(app.db, config) }
  })

  app.post('/passkeys/login', {
    config: { rateLimitKind: 'credentials' },
    schema: {
      tags: ['passkeys'],
      summary: 'Sign in with a passkey: sets the access and refresh cookies',
      description: 'A complete sign-in (user verification is required): no second factor follows, and MFA_REQUIRED_ROLES is satisfied.',
      body: Type.Object({ response: AuthenticationResponse }, { additionalProperties: false }),
      response: {
        200: settingCookies(UserEnvelope, 'Sets the access and refresh cookies, as /login does'),
        ...failures({ 401: '`PASSKEY_INVALID`: unknown passkey, unknown, expired or used challenge, wrong origin or RP id, no user verification, a bad signature, or a signature counter that went backwards (a cloned key)' }),
      },
    },
  }, async (request, reply) => {
    const response = request.body.response as AuthenticationResponseJSON
    const passkey = await findPasskeyByCredentialId(app.db, response.id)
    // A known passkey's account is limited like a password's: checked before anything is verified,
    // so while limited the right passkey gets the same 429 as a wrong signature.
    if (passkey !== undefined) await app.accountLimit.assertNotLimited(request, reply, accountKeyOfUser(passkey.userId))
    const challenge = await consumeChallenge(app.db, 'authentication', response.response.clientDataJSON)
    if (passkey === undefined) return refuseSignIn(request, 'unknown_credential', null)
    if (challenge === undefined) return refuseSignIn(request, 'challenge', passkey.userId)
    // The authenticator names the account the passkey was made for: it must be the passkey's owner.
    const handle = response.response.userHandle
    if (handle !== undefined && handle.replace(/=+$/, '') !== Buffer.from(userHandle(passkey.userId)).toString('base64url')) {
      return refuseSignIn(request, 'user_handle', passkey.userId)
    }
    let verification: Awaited<ReturnType<typeof verifyAuthentication>>
    try {
      verification = await verifyAuthentication(config, response, challenge.challenge, passkey)
    } catch (error) {
      const message = (error as Error).message
      request.log.info({ reason: message }, 'passkey sign-in refused')
      return refuseSignIn(request, /counter/i.test(message) ? 'counter_went_backwards' : 'verification', passkey.userId)
    }
    if (!verification.verified) return refuseSignIn(request, 'signature', passkey.userId)
    const { newCounter, credentialBackedUp } = verification.authenticationInfo
    // Checked again where it is stored, so a copy signing at the same moment cannot also get in.
    if (!await recordPasskeyUse(app.db, passkey.id, passkey.counter, newCounter, credentialBackedUp)) {
      return refuseSignIn(request, 'counter_went_backwards', passkey.userId)
    }
    const user = await findUserById(app.db, passkey.userId)
    if (user === undefined) return refuseSignIn(request, 'unknown_credential', null)
    succeeded('authentication')
    return startSession(app, request, reply, user, 'browser', 'passkey')
  })
}

export default passkeysRoutes
