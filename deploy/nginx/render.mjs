#!/usr/bin/env node
// Renders cookie-auth-api.conf.template (beside this file) from environment variables and prints
// the Nginx configuration on stdout. Usage (see deploy/README.md):
//
//   SERVER_NAME=api.example.com node deploy/nginx/render.mjs > /etc/nginx/sites-available/cookie-auth-api.conf
//
// Only the placeholders listed in VARIABLES are replaced, and a placeholder the list does not know
// stops the render: a typo must not reach Nginx as a literal.
import { readFileSync } from 'node:fs'

const env = process.env
const firstName = (env.SERVER_NAME ?? '').trim().split(/\s+/)[0]

/** The first IPv4 nameserver of this machine, which Nginx needs to reach OCSP responders. */
function systemResolver () {
  try {
    const match = /^nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/m.exec(readFileSync('/etc/resolv.conf', 'utf8'))
    if (match) return match[1]
  } catch {}
  return '1.1.1.1 9.9.9.9'
}

/** `server` lines for the upstream block, from API_SERVERS ("host:port host:port"). */
function upstreamServers (list) {
  const servers = list.trim().split(/[\s,]+/).filter(Boolean)
  if (servers.length === 0) throw new Error('API_SERVERS is empty')
  for (const server of servers) {
    if (!/^[\w.-]+:\d+$/.test(server) && !/^\[[\da-f:]+\]:\d+$/i.test(server)) throw new Error(`API_SERVERS has "${server}", which is not host:port`)
  }
  return servers.map((server) => `server ${server} max_fails=0;`).join('\n    ')
}

const VARIABLES = {
  SERVER_NAME: () => env.SERVER_NAME,
  HTTP_PORT: () => env.HTTP_PORT || '80',
  HTTPS_PORT: () => env.HTTPS_PORT || '443',
  TLS_CERT: () => env.TLS_CERT || (firstName ? `/etc/letsencrypt/live/${firstName}/fullchain.pem` : undefined),
  TLS_KEY: () => env.TLS_KEY || (firstName ? `/etc/letsencrypt/live/${firstName}/privkey.pem` : undefined),
  ACME_ROOT: () => env.ACME_ROOT || '/var/www/letsencrypt',
  FRONTEND_ROOT: () => env.FRONTEND_ROOT || '/srv/cookie-auth-api/app/deploy/frontend',
  API_UPSTREAM: () => env.API_UPSTREAM || upstreamServers(env.API_SERVERS || '127.0.0.1:8086 127.0.0.1:8087'),
  RESOLVER: () => env.RESOLVER || systemResolver(),
}

try {
  const template = readFileSync(new URL('./cookie-auth-api.conf.template', import.meta.url), 'utf8')
  const values = {}
  for (const [name, value] of Object.entries(VARIABLES)) {
    const resolved = value()
    if (resolved === undefined || resolved.trim() === '') throw new Error(`${name} must be set (e.g. SERVER_NAME=api.example.com)`)
    // A value with a newline, semicolon or brace could add directives of its own.
    if (name !== 'API_UPSTREAM' && /[;{}\n]/.test(resolved)) throw new Error(`${name} must not contain ; { } or a newline`)
    values[name] = resolved.trim()
  }
  const rendered = template.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_match, name) => {
    if (!(name in values)) throw new Error(`the template has a placeholder this script does not know: ${name}`)
    return values[name]
  })
  process.stdout.write(rendered)
} catch (error) {
  console.error(`render.mjs: ${error.message}`)
  process.exitCode = 1
}
