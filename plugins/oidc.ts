import fp from 'fastify-plugin'
import * as client from 'openid-client'
import type { OidcProviderSettings } from '../src/config.js'

/** A provider ready to use: its settings and the configuration its discovery document gave. */
export interface OidcProvider {
  readonly id: string
  readonly name: string
  readonly configuration: client.Configuration
  /** Where the provider sends the browser back: `<PUBLIC_ORIGIN>/api/auth/oidc/<id>/callback`. */
  readonly redirectUri: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The identity providers whose discovery succeeded at start, by id. */
    oidcProviders: ReadonlyMap<string, OidcProvider>
  }
}

/** A provider that production needs could not be loaded: the start stops with this one line. */
export class OidcDiscoveryFailed extends Error {
  constructor (readonly provider: string, issuer: string, cause: unknown) {
    super(`Cannot start: the identity provider "${provider}" (OIDC_${provider.toUpperCase()}_ISSUER=${issuer}) did not answer its discovery document: ${(cause as Error | undefined)?.message ?? String(cause)}`)
    this.name = 'OidcDiscoveryFailed'
  }
}

// A provider that does not answer must not hold the start up for openid-client's default 30 s.
const DISCOVERY_TIMEOUT_SECONDS = 10

async function discover (settings: OidcProviderSettings, isProduction: boolean): Promise<client.Configuration> {
  return client.discovery(new URL(settings.issuer), settings.clientId, settings.clientSecret, undefined, {
    timeout: DISCOVERY_TIMEOUT_SECONDS,
    execute: [
      // The ID token's signature is checked against the provider's published keys, not only trusted
      // because it came over TLS: development allows plain http, and a forged token must not pass.
      client.enableNonRepudiationChecks,
      // Plain http is for a provider on loopback in development and tests; config.ts refuses it in production.
      ...(isProduction ? [] : [client.allowInsecureRequests]),
    ],
  })
}

/**
 * Loads every configured provider's discovery document once, at start. In production a provider
 * that cannot be loaded stops the start (a sign-in button that can only fail is a broken deploy);
 * in development it is logged and left out, so a provider being down does not stop the work.
 */
export default fp(async (app) => {
  const { oidcProviders, isProduction, publicOrigins } = app.config
  const loaded = new Map<string, OidcProvider>()
  const apiOrigin = publicOrigins[0]
  // Side by side: a start waits for the slowest provider, not for the sum of their timeouts.
  const discovered = await Promise.allSettled(oidcProviders.map((settings) => discover(settings, isProduction)))
  for (const [index, settings] of oidcProviders.entries()) {
    const result = discovered[index]!
    if (result.status === 'rejected') {
      if (isProduction) throw new OidcDiscoveryFailed(settings.id, settings.issuer, result.reason)
      app.log.warn({ provider: settings.id, issuer: settings.issuer, err: result.reason }, 'identity provider left out: its discovery failed')
      continue
    }
    loaded.set(settings.id, {
      id: settings.id,
      name: settings.name,
      configuration: result.value,
      redirectUri: `${apiOrigin}/api/auth/oidc/${settings.id}/callback`,
    })
  }
  app.decorate('oidcProviders', loaded)
}, { name: 'oidc', dependencies: ['config'] })
