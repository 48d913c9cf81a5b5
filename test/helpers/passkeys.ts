import type { FastifyInstance } from 'fastify'
import type { Cookies, SignedIn } from './app.js'
import { SoftAuthenticator } from './webauthn.js'

// The development relying party: the frontend on http://localhost:4100, RP id `localhost`.
export const ORIGIN = 'http://localhost:4100'
export const RP_ID = 'localhost'

export async function registrationOptions (app: FastifyInstance, cookies: Cookies) {
  const answer = await app.inject({ method: 'POST', url: '/api/auth/passkeys/register/options', cookies })
  if (answer.statusCode !== 200) throw new Error(`register/options: ${answer.statusCode} ${answer.body}`)
  return answer.json().options
}

export const finishRegistration = (app: FastifyInstance, cookies: Cookies, response: unknown, name?: string) =>
  app.inject({ method: 'POST', url: '/api/auth/passkeys/register', cookies, payload: { response, ...(name === undefined ? {} : { name }) } })

/** Registers a passkey of a new software authenticator through the real routes. */
export async function addPasskey (app: FastifyInstance, user: SignedIn, name = 'Laptop') {
  const authenticator = new SoftAuthenticator()
  const answer = await finishRegistration(app, user.cookies, authenticator.create(await registrationOptions(app, user.cookies), { origin: ORIGIN }), name)
  if (answer.statusCode !== 201) throw new Error(`register: ${answer.statusCode} ${answer.body}`)
  return { authenticator, passkey: answer.json().passkey as { id: string, name: string } }
}
