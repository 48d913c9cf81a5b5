import type { FastifyInstance } from 'fastify'
import { signIn, type SignedIn } from './app.js'
import { tokenIn, type TestSmtpServer } from './smtp.js'

export type UserWithAddress = SignedIn & { email: string }

/**
 * What the e-mail tests of a file share: one app that mails to one test SMTP server, fresh addresses,
 * and users whose address was verified through the real routes and the mailed link.
 */
export function emailKit (app: FastifyInstance, smtp: TestSmtpServer) {
  let addressCount = 0
  const newAddress = (name = 'person') => `${name}${++addressCount}.${Date.now()}@example.test`

  function post (url: string, payload: object, cookies?: Record<string, string>) {
    return app.inject({ method: 'POST', url, payload, ...(cookies === undefined ? {} : { cookies }) })
  }

  /** A signed-in user whose verified address is `email`. */
  async function userWithAddress (email = newAddress()): Promise<UserWithAddress> {
    const user = await signIn(app)
    const asked = await post('/api/auth/email', { email, currentPassword: user.password }, user.cookies)
    if (asked.statusCode !== 202) throw new Error(`POST /email failed: ${asked.statusCode} ${asked.body}`)
    const [mail] = await smtp.waitFor(email)
    const verified = await post('/api/auth/email/verify', { token: tokenIn(mail!) })
    if (verified.statusCode !== 200) throw new Error(`verify failed: ${verified.body}`)
    return { ...user, email }
  }

  function mailsTo (email: string) {
    return smtp.received.filter((mail) => mail.to === email.toLowerCase())
  }

  return { newAddress, post, userWithAddress, mailsTo }
}
