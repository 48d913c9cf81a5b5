import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { Encoder } from 'cbor-x'

// Plain CBOR as authenticators write it: byte strings untagged, maps as maps (integer keys for COSE).
const cbor = new Encoder({ useRecords: false, mapsAsObjects: false, tagUint8Array: false, variableMapSize: true })

const sha256 = (data: Uint8Array | string): Buffer => createHash('sha256').update(data).digest()
const b64url = (data: Buffer) => data.toString('base64url')

// Authenticator data flags (WebAuthn §6.1).
export const FLAG_UP = 0x01
export const FLAG_UV = 0x04
export const FLAG_AT = 0x40

export interface CreationOptionsJson { challenge: string, rp: { id?: string }, user: { id: string } }
export interface RequestOptionsJson { challenge: string }

export interface CeremonyTweaks {
  /** The page the browser says the ceremony ran on. */
  origin?: string
  /** The RP id whose hash goes into the authenticator data. */
  rpId?: string
  /** Authenticator data flags: UP|UV by default (AT is added for a registration). */
  flags?: number
  /** Sign with this key instead of the credential's own. */
  signingKey?: KeyObject
  /** Report this signature counter instead of the next one. */
  counter?: number
}

/**
 * A software authenticator, as a platform authenticator behaves: one P-256 key pair per credential
 * (ES256), attestation "none", a signature counter, and the user handle it was given at
 * registration. It produces exactly the JSON @simplewebauthn/browser would post.
 */
export class SoftAuthenticator {
  readonly credentialId: Buffer
  readonly privateKey: KeyObject
  private readonly publicJwk: { x: string, y: string }
  counter: number
  userHandle: string | undefined

  /** `credentialId`: claim this id (another credential's, base64url) with a key of its own, as a forged or colliding authenticator would. */
  constructor ({ counter = 0, credentialId }: { counter?: number, credentialId?: string } = {}) {
    this.credentialId = credentialId === undefined ? randomBytes(32) : Buffer.from(credentialId, 'base64url')
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    this.privateKey = privateKey
    this.publicJwk = publicKey.export({ format: 'jwk' }) as { x: string, y: string }
    this.counter = counter
  }

  get id (): string { return b64url(this.credentialId) }

  /** The COSE_Key: kty EC2 (2), alg ES256 (-7), crv P-256 (1), x, y. */
  private cosePublicKey (): Buffer {
    return cbor.encode(new Map<number, number | Buffer>([
      [1, 2], [3, -7], [-1, 1], [-2, Buffer.from(this.publicJwk.x, 'base64url')], [-3, Buffer.from(this.publicJwk.y, 'base64url')],
    ]))
  }

  private authenticatorData (rpId: string, flags: number, counter: number, withCredential: boolean): Buffer {
    const counterBytes = Buffer.alloc(4)
    counterBytes.writeUInt32BE(counter)
    const parts = [sha256(rpId), Buffer.from([flags]), counterBytes]
    if (withCredential) {
      const length = Buffer.alloc(2)
      length.writeUInt16BE(this.credentialId.length)
      parts.push(Buffer.alloc(16), length, this.credentialId, this.cosePublicKey()) // AAGUID all zero: "none"
    }
    return Buffer.concat(parts)
  }

  private clientData (type: 'webauthn.create' | 'webauthn.get', challenge: string, origin: string): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }))
  }

  /** navigator.credentials.create() → RegistrationResponseJSON. */
  create (options: CreationOptionsJson, tweaks: CeremonyTweaks & { origin: string }) {
    const rpId = tweaks.rpId ?? options.rp.id ?? 'localhost'
    const flags = (tweaks.flags ?? (FLAG_UP | FLAG_UV)) | FLAG_AT
    this.userHandle = options.user.id
    const authData = this.authenticatorData(rpId, flags, this.counter, true)
    const attestationObject = cbor.encode(new Map<string, unknown>([['fmt', 'none'], ['attStmt', new Map()], ['authData', authData]]))
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: b64url(this.clientData('webauthn.create', options.challenge, tweaks.origin)),
        attestationObject: b64url(attestationObject),
        transports: ['internal'],
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    }
  }

  /** navigator.credentials.get() → AuthenticationResponseJSON, the counter moved on by one. */
  get (options: RequestOptionsJson, tweaks: CeremonyTweaks & { origin: string, rpId: string }) {
    const counter = tweaks.counter ?? (this.counter += 1)
    const authData = this.authenticatorData(tweaks.rpId, tweaks.flags ?? (FLAG_UP | FLAG_UV), counter, false)
    const clientDataJSON = this.clientData('webauthn.get', options.challenge, tweaks.origin)
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientDataJSON)]), tweaks.signingKey ?? this.privateKey)
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: b64url(clientDataJSON),
        authenticatorData: b64url(authData),
        signature: b64url(signature),
        ...(this.userHandle === undefined ? {} : { userHandle: this.userHandle }),
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    }
  }
}
