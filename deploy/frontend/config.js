/* global location */
// Where the API lives, judged from where this page was loaded.
//
// In development the frontend (`npm start` serves it on http://localhost:4100) and the API (port
// 8086) sit on different *sites* on purpose: the page on http://localhost calls
// http://127.0.0.1:8086 and the other way round, so every request is a real cross-site, credentialed
// fetch (CORS, SameSite=None, Partitioned), as with a frontend on another domain.
// Anywhere else, and on localhost over HTTPS (Nginx in front, as in production), the API is on the
// page's own origin under /api.
const DEVELOPMENT_APIS = new Map([
  ['localhost', 'http://127.0.0.1:8086'],
  ['127.0.0.1', 'http://localhost:8086'],
])

export const API_BASE = location.protocol === 'http:' ? DEVELOPMENT_APIS.get(location.hostname) ?? '' : ''
