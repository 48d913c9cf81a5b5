// Where the API lives, judged from where this page was loaded.
//
// In development the frontend (port 4100) and the API (port 8086) run on different *sites* on
// purpose: the page on http://localhost:4100 calls http://127.0.0.1:8086 and the other way round,
// so every request is a real cross-site, credentialed fetch (CORS, SameSite=None, Partitioned).
// Anywhere else the page is deployed behind Nginx with the API on the same origin under /api.
const DEVELOPMENT_APIS = new Map([
  ['localhost', 'http://127.0.0.1:8086'],
  ['127.0.0.1', 'http://localhost:8086'],
])

export const API_BASE = DEVELOPMENT_APIS.get(location.hostname) ?? ''
