import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { generateSync } from 'otplib'
import { cookiesFrom, type Cookies, type SignedIn } from './app.js'

const PERIOD = 30

/** The code an authenticator app would show now, or `offset` time steps away. */
export function totpCode (secret: string, offset = 0): string {
  return generateSync({ secret, epoch: Math.floor(Date.now() / 1000) + offset * PERIOD })
}

/**
 * Waits until the current time step has at least `seconds` left, so that a code computed now is
 * still the same step's code when the server checks it (a few requests later).
 */
export async function roomInStep (seconds = 6): Promise<void> {
  const left = PERIOD - (Date.now() / 1000) % PERIOD
  if (left < seconds) await sleep(Math.ceil(left * 1000) + 50)
}

/** Waits for the next time step to begin. */
export async function nextStep (): Promise<void> {
  const left = PERIOD - (Date.now() / 1000) % PERIOD
  await sleep(Math.ceil(left * 1000) + 50)
}

export interface Enrolled { secret: string, recoveryCodes: string[] }

/**
 * Turns TOTP on through the real routes. The confirming code is the previous step's, so the
 * current and next steps are still free for the sign-ins that follow.
 */
export async function enrolTotp (app: FastifyInstance, user: SignedIn): Promise<Enrolled> {
  const started = await app.inject({ method: 'POST', url: '/api/auth/mfa/totp', cookies: user.cookies, payload: { currentPassword: user.password } })
  if (started.statusCode !== 201) throw new Error(`enrol failed: ${started.statusCode} ${started.body}`)
  const { secret } = started.json() as { secret: string }
  await roomInStep()
  const confirmed = await app.inject({ method: 'POST', url: '/api/auth/mfa/totp/confirm', cookies: user.cookies, payload: { code: totpCode(secret, -1) } })
  if (confirmed.statusCode !== 200) throw new Error(`confirm failed: ${confirmed.statusCode} ${confirmed.body}`)
  return { secret, recoveryCodes: confirmed.json().recoveryCodes }
}

/** The password step of /login: the answer and the pending-sign-in cookie it set. */
export async function passwordStep (app: FastifyInstance, user: { username: string, password: string }): Promise<{ response: LightMyRequestResponse, cookies: Cookies }> {
  const response = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: user.username, password: user.password } })
  return { response, cookies: cookiesFrom(response) }
}

export function verifyCode (app: FastifyInstance, cookies: Cookies, payload: Record<string, string>) {
  return app.inject({ method: 'POST', url: '/api/auth/mfa/verify', cookies, payload })
}
