// Generated from the server's configuration (src/frontend-config.ts): where the API is.
// The Content-Security-Policy in index.html allows fetches to the same origins.
export const API_BASE = ""
