// The identity provider's callback carries an authorization code and the flow's `state` in its
// query, and /start and /link the frontend tab's `challenge`: each matters for the few minutes it
// lives (a challenge read from a log could bind a planted code to that tab), so no log line holds them.
const OIDC_FLOW = /^\/api\/auth\/oidc\/[^/?]+\/(callback|start|link)(\?|$)/
const SECRET_PARAMETERS = ['code', 'state', 'challenge']

/** The request URL as a log line may show it: the OIDC flow's `code`, `state` and `challenge` replaced. */
export function loggableUrl (url: string): string {
  if (!OIDC_FLOW.test(url)) return url
  const query = url.indexOf('?')
  if (query === -1) return url
  const parameters = new URLSearchParams(url.slice(query + 1))
  for (const name of SECRET_PARAMETERS) {
    if (parameters.has(name)) parameters.set(name, '[redacted]')
  }
  return `${url.slice(0, query)}?${parameters.toString()}`
}
