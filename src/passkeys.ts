import {
  generateAuthenticationOptions, generateRegistrationOptions, verifyAuthenticationResponse, verifyRegistrationResponse,
  type AuthenticationResponseJSON, type AuthenticatorTransport, type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON, type RegistrationResponseJSON,
} from '@simplewebauthn/server'
import { decodeClientDataJSON } from '@simplewebauthn/server/helpers'
import type { Config } from './config.js'
import type { Db } from './db/client.js'
import { consumeSecret, issueSecret, type SecretKind } from './db/queries/one-time-secrets.js'

/** A ceremony's challenge lives this long, server-side, and is used once. */
export const PASSKEY_CHALLENGE_TTL_SECONDS = 300

type Ceremony = 'registration' | 'authentication'
const KIND: Record<Ceremony, SecretKind> = { registration: 'webauthn_registration', authentication: 'webauthn_authentication' }

const TRANSPORTS = new Set<AuthenticatorTransport>(['ble', 'hybrid', 'internal', 'nfc', 'usb'])

type RelyingParty = Pick<Config, 'webauthnRpId' | 'webauthnRpName' | 'webauthnOrigins'>

/**
 * A new challenge: a one-time secret (32 random bytes, only its SHA-256 stored, 5 minutes, single
 * use), whose value is itself the challenge. The browser hands it back inside clientDataJSON, so
 * whichever instance receives the answer finds it by its hash: no state on the instance that began.
 */
async function newChallenge (db: Db, ceremony: Ceremony, userId: string | null): Promise<Uint8Array<ArrayBuffer>> {
  const value = await issueSecret(db, {
    kind: KIND[ceremony],
    userId,
    ttlSeconds: PASSKEY_CHALLENGE_TTL_SECONDS,
    // A newer registration voids the user's older unfinished one; sign-in challenges belong to nobody.
    supersede: userId !== null,
  })
  // As bytes, so that the options' base64url challenge is exactly the secret's value.
  return new Uint8Array(Buffer.from(value, 'base64url'))
}

/**
 * Uses up the challenge that a ceremony's clientDataJSON carries. Undefined when the JSON cannot be
 * read, or the challenge is unknown, expired, already used or of the other ceremony.
 */
export async function consumeChallenge (db: Db, ceremony: Ceremony, clientDataJSON: string): Promise<{ challenge: string, userId: string | null } | undefined> {
  let challenge: unknown
  try {
    challenge = decodeClientDataJSON(clientDataJSON).challenge
  } catch {
    return undefined
  }
  if (typeof challenge !== 'string' || !/^[\w-]{16,128}$/.test(challenge)) return undefined
  const row = await consumeSecret(db, KIND[ceremony], challenge)
  return row === undefined ? undefined : { challenge, userId: row.userId }
}

/** The WebAuthn user handle: the user's UUID as 16 bytes (random, no personal data). */
export function userHandle (userId: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(userId.replaceAll('-', ''), 'hex'))
}

export async function registrationOptions (
  db: Db, rp: RelyingParty, user: { id: string, username: string }, existing: Array<{ credentialId: string, transports: string[] }>
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  return generateRegistrationOptions({
    rpName: rp.webauthnRpName,
    rpID: rp.webauthnRpId,
    userID: userHandle(user.id),
    userName: user.username,
    userDisplayName: user.username,
    challenge: await newChallenge(db, 'registration', user.id),
    // The browser's own timeout; the challenge itself lasts PASSKEY_CHALLENGE_TTL_SECONDS.
    timeout: 120_000,
    // No attestation: which authenticator model it is would tell us nothing we act on.
    attestationType: 'none',
    // One passkey per authenticator: the browser says so instead of making a second.
    excludeCredentials: existing.map(({ credentialId, transports }) => ({ id: credentialId, transports: knownTransports(transports) })),
    // Discoverable (the sign-in asks no username) and verified (a PIN or biometric, so the passkey
    // alone is a complete sign-in, second factor included).
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
  })
}

/** What both ceremonies check the browser's answer against; user verification is never optional. */
function expected (rp: RelyingParty, challenge: string) {
  return { expectedChallenge: challenge, expectedOrigin: [...rp.webauthnOrigins], expectedRPID: rp.webauthnRpId, requireUserVerification: true }
}

export async function verifyRegistration (rp: RelyingParty, response: RegistrationResponseJSON, challenge: string) {
  return verifyRegistrationResponse({ response, ...expected(rp, challenge) })
}

export async function authenticationOptions (db: Db, rp: RelyingParty): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return generateAuthenticationOptions({
    rpID: rp.webauthnRpId,
    challenge: await newChallenge(db, 'authentication', null),
    timeout: 120_000,
    // Empty: the authenticator offers the passkeys it holds for this site (discoverable credentials).
    allowCredentials: [],
    userVerification: 'required',
  })
}

export async function verifyAuthentication (
  rp: RelyingParty, response: AuthenticationResponseJSON, challenge: string,
  credential: { credentialId: string, publicKey: string, counter: number, transports: string[] }
): Promise<Awaited<ReturnType<typeof verifyAuthenticationResponse>>> {
  return verifyAuthenticationResponse({
    response,
    ...expected(rp, challenge),
    credential: {
      id: credential.credentialId,
      publicKey: new Uint8Array(Buffer.from(credential.publicKey, 'base64url')),
      counter: credential.counter,
      transports: knownTransports(credential.transports),
    },
  })
}

export function knownTransports (transports: readonly string[] | undefined): AuthenticatorTransport[] {
  return (transports ?? []).filter((transport): transport is AuthenticatorTransport => TRANSPORTS.has(transport as AuthenticatorTransport))
}
