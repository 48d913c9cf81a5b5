// The identity provider's callback carries an authorization code and the flow's `state` in its
// query: both are secrets for the few minutes they live, and a log line must not hold them.
const OIDC_CALLBACK = /^\/api\/auth\/oidc\/[^/?]+\/callback(\?|$)/
const SECRET_PARAMETERS = ['code', 'state']

/** The request URL as a log line may show it: the callback's `code` and `state` replaced. */
export function loggableUrl (url: string): string {
  if (!OIDC_CALLBACK.test(url)) return url
  const query = url.indexOf('?')
  if (query === -1) return url
  const parameters = new URLSearchParams(url.slice(query + 1))
  for (const name of SECRET_PARAMETERS) {
    if (parameters.has(name)) parameters.set(name, '[redacted]')
  }
  return `${url.slice(0, query)}?${parameters.toString()}`
}
