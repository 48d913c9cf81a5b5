import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomUUID } from 'node:crypto'
import Provider, { type Configuration } from 'oidc-provider'
import type { TestContext } from './app.js'

/** The claims each test account has at the provider; the account id is what one types as login. */
export type Accounts = Record<string, { email?: string, preferred_username?: string, name?: string }>

/**
 * How a provider may misbehave, each through oidc-provider's own middleware (it is a Koa app):
 * - `wrongNonce`: the authorization request's nonce is swapped before the provider reads it, so the
 *   ID token carries a nonce the API never sent;
 * - `otherAudience`: the authorization and token requests are rewritten to another registered
 *   client, so the ID token is issued for that client, not the API;
 * - `forgedSignature`: the token endpoint's ID token leaves with its signature altered, as a token
 *   forged or changed on the way would (its claims are all right).
 */
export type Misbehaviour = 'wrongNonce' | 'otherAudience' | 'forgedSignature'

export interface TestProvider {
  readonly issuer: string
  readonly clientId: string
  readonly clientSecret: string
  /** The env that configures this provider in the API under `id`. */
  env (id: string, name?: string): Record<string, string>
}

export interface TestProviderOptions {
  accounts: Accounts
  /** The API's callback URLs registered for the client. */
  redirectUris: string[]
  misbehave?: Misbehaviour
  /** A fixed port (the browser test's stack); default: any free one. */
  port?: number
}

const OTHER_CLIENT = { client_id: 'another-app', client_secret: 'another-app-secret-of-enough-length' }

/** A real OpenID provider (oidc-provider, development interactions on) on loopback, closed at teardown. */
export async function startOidcProvider (t: TestContext, options: TestProviderOptions): Promise<TestProvider> {
  const server: Server = createServer()
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const clientId = `api-${randomUUID().slice(0, 8)}`
  const clientSecret = `secret-${randomUUID()}`
  const client = { client_secret: clientSecret, redirect_uris: options.redirectUris, response_types: ['code' as const], grant_types: ['authorization_code'] }
  const configuration: Configuration = {
    clients: [{ client_id: clientId, ...client }, { ...client, ...OTHER_CLIENT }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: [randomUUID()] },
    async findAccount (_ctx, accountId) {
      const claims = options.accounts[accountId]
      if (claims === undefined) return undefined
      return { accountId, claims: async () => ({ sub: accountId, ...claims, ...(claims.email === undefined ? {} : { email_verified: true }) }) }
    },
  }
  const provider = new Provider(issuer, configuration)
  if (options.misbehave === 'wrongNonce') {
    provider.use(async (ctx, next) => {
      if (ctx.path === '/auth' && typeof ctx.query.nonce === 'string') {
        ctx.querystring = new URLSearchParams({ ...ctx.query as Record<string, string>, nonce: 'a-nonce-the-api-never-sent' }).toString()
      }
      await next()
    })
  }
  if (options.misbehave === 'otherAudience') {
    provider.use(async (ctx, next) => {
      if (ctx.path === '/auth' && ctx.query.client_id === clientId) {
        ctx.querystring = new URLSearchParams({ ...ctx.query as Record<string, string>, client_id: OTHER_CLIENT.client_id }).toString()
      }
      if (ctx.path === '/token' && ctx.method === 'POST') {
        // Read the form here and hand the provider the rewritten one (it uses an upstream body when given one).
        const chunks: Buffer[] = []
        for await (const chunk of ctx.req) chunks.push(chunk as Buffer)
        const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()))
        ;(ctx.request as { body?: unknown }).body = { ...form, ...OTHER_CLIENT }
      }
      await next()
    })
  }
  if (options.misbehave === 'forgedSignature') {
    provider.use(async (ctx, next) => {
      await next()
      const body = ctx.body as { id_token?: unknown } | undefined
      if (ctx.path === '/token' && typeof body?.id_token === 'string') {
        // The signature's first characters swapped for others: same length, same claims, wrong bytes.
        const [header, payload, signature] = body.id_token.split('.')
        const altered = (signature!.startsWith('AAAA') ? 'BBBB' : 'AAAA') + signature!.slice(4)
        ctx.body = { ...body, id_token: `${header}.${payload}.${altered}` }
      }
    })
  }
  server.on('request', provider.callback())
  return {
    issuer,
    clientId,
    clientSecret,
    env: (id, name = id) => {
      const prefix = `OIDC_${id.toUpperCase()}_`
      return { [prefix + 'ISSUER']: issuer, [prefix + 'CLIENT_ID']: clientId, [prefix + 'CLIENT_SECRET']: clientSecret, [prefix + 'NAME']: name }
    },
  }
}

/** A tiny cookie jar for one host: what a browser would send back to the provider. */
class Jar {
  private readonly cookies = new Map<string, string>()
  take (response: Response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';')
      const equals = pair!.indexOf('=')
      const name = pair!.slice(0, equals).trim()
      const value = pair!.slice(equals + 1).trim()
      if (value === '' || /max-age=0|expires=thu, 01 jan 1970/i.test(line)) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }

  header () { return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ') }
}

/** The hidden `prompt` and the action of the development interaction's form. */
function formOf (html: string): { action: string, prompt: string } | undefined {
  const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1]
  const prompt = /name="prompt" value="([^"]+)"/.exec(html)?.[1]
  return action === undefined || prompt === undefined ? undefined : { action: action.replaceAll('&amp;', '&'), prompt }
}

/**
 * Plays the person at the provider, over HTTP: follows the redirects from the authorization URL with
 * the provider's cookies, signs in as `account` on the login form, accepts the consent form, and
 * returns the URL the provider sends the browser back to (the API's callback, not fetched).
 */
export async function signInAtProvider (authorizationUrl: string, account: string, callbackPrefix: string): Promise<URL> {
  const jar = new Jar()
  let next: { url: string, method: 'GET' | 'POST', body?: string } = { url: authorizationUrl, method: 'GET' }
  for (let step = 0; step < 20; step++) {
    const response = await fetch(next.url, {
      method: next.method,
      redirect: 'manual',
      headers: { cookie: jar.header(), ...(next.body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }) },
      ...(next.body === undefined ? {} : { body: next.body }),
    })
    jar.take(response)
    const location = response.headers.get('location')
    if (response.status >= 300 && response.status < 400 && location !== null) {
      const target = new URL(location, next.url)
      if (target.href.startsWith(callbackPrefix)) return target
      next = { url: target.href, method: 'GET' }
      continue
    }
    const html = await response.text()
    const form = formOf(html)
    if (response.status !== 200 || form === undefined) throw new Error(`the provider answered ${response.status}: ${html.slice(0, 300)}`)
    const body = form.prompt === 'login'
      ? new URLSearchParams({ prompt: 'login', login: account, password: 'any password will do' })
      : new URLSearchParams({ prompt: form.prompt })
    next = { url: new URL(form.action, next.url).href, method: 'POST', body: body.toString() }
  }
  throw new Error('the provider never sent the browser back')
}
