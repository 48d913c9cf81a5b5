import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { extname, join } from 'node:path'
import { is } from 'drizzle-orm'
import { PgTable } from 'drizzle-orm/pg-core'
import postgres from 'postgres'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import * as schema from '../src/db/schema.js'
import { vendorSource } from '../src/frontend-vendor.js'
import { projectRoot } from '../src/paths.js'
import {
  ChildWithLogs, cookieHeader, findProgram, freePort, randomHex, request, run, startSlowPost, updateJar, waitFor,
  type Answer, type RequestOptions,
} from './helpers/deploy-stack.js'
import { programSkip } from './helpers/tools.js'

const ROLLING_CLIENT = '127.0.0.5'

// The deployment in deploy/, proven with the real programs: the Nginx config rendered for test ports
// with a self-signed certificate, two API instances (production mode) on Postgres through the
// runtime role from roles.sql, Nginx as a foreground child. Ports are picked free at run time and
// every process is stopped at teardown. Without Nginx, openssl, psql or a reachable Postgres, the
// live part is skipped with the reason; the static checks of compose.yaml, the Dockerfile and the
// systemd unit run anyway.

const root = projectRoot()
const deploy = join(root, 'deploy')
const read = (path: string) => readFileSync(join(deploy, path), 'utf8')

t.test('the Nginx template keeps the rules the API relies on', async (t) => {
  const template = read('nginx/cookie-auth-api.conf.template')
  const directives = template.split('\n').map((line) => line.replace(/#.*/, '').trim()).filter((line) => line !== '')
  const nextUpstream = directives.find((line) => line.startsWith('proxy_next_upstream '))
  t.ok(nextUpstream, 'proxy_next_upstream is set')
  t.notMatch(nextUpstream ?? '', /non_idempotent/, 'a POST is never sent to a second instance')
  t.match(nextUpstream ?? '', /http_503/, 'an instance draining after SIGTERM (503) hands the request on')
  t.notOk(directives.some((line) => /access-control-/i.test(line)), 'Nginx adds no CORS header: the API owns CORS')
  t.ok(directives.includes('client_max_body_size 1m;'), 'the body limit is the API\'s 1 MiB')
  t.ok(directives.includes('ssl_protocols TLSv1.2 TLSv1.3;'), 'TLS 1.2 and 1.3 only')
  t.ok(directives.includes('keepalive 32;'), 'keep-alive connections to the instances')
  t.ok(directives.includes('proxy_set_header X-Forwarded-For $remote_addr;'), 'X-Forwarded-For is replaced, not appended to')
  t.ok(directives.includes('proxy_set_header X-Forwarded-Proto $scheme;'))
  // eslint-disable-next-line no-template-curly-in-string -- the template's own placeholder
  t.ok(directives.includes('return 301 https://$server_name:${HTTPS_PORT}$request_uri;'), 'the redirect never follows the client\'s Host')
  t.notOk(directives.some((line) => line.startsWith('return 301') && line.includes('$host')))
})

t.test('compose.yaml: the services, their health checks, two API replicas, and no inline secret', async (t) => {
  const compose = parseYaml(read('compose.yaml')) as {
    services: Record<string, {
      image?: string
      build?: unknown
      command?: unknown
      ports?: string[]
      volumes?: string[]
      environment?: Record<string, string | number | boolean>
      env_file?: unknown
      healthcheck?: { test?: unknown, disable?: boolean }
      depends_on?: Record<string, { condition: string }>
      deploy?: { replicas?: number }
      restart?: string
    }>
    volumes?: Record<string, unknown>
  }
  const { services } = compose
  t.same(Object.keys(services).sort(), ['api', 'migrate', 'nginx', 'postgres'])
  const service = (name: string) => services[name] ?? {}
  const [db, migrate, api, nginx] = ['postgres', 'migrate', 'api', 'nginx'].map(service) as [ReturnType<typeof service>, ReturnType<typeof service>, ReturnType<typeof service>, ReturnType<typeof service>]
  t.ok(db.volumes?.some((volume) => /^[\w-]+:\/var\/lib\/postgresql\/data$/.test(volume)), 'Postgres data on a named volume')
  t.ok(compose.volumes !== undefined && Object.keys(compose.volumes).length > 0, 'the volume is declared')
  t.ok(db.healthcheck?.test, 'Postgres has a health check')
  t.ok(api.healthcheck?.test, 'the API has a health check')
  t.match(JSON.stringify(api.healthcheck?.test), /\/api\/health\/ready/, 'on readiness')
  t.equal(api.deploy?.replicas, 2, 'two API replicas')
  t.equal(migrate.restart, 'no', 'migrate is one-shot')
  t.match(JSON.stringify(migrate.command), /migrate/, 'migrate runs the migrations')
  t.equal(api.depends_on?.migrate?.condition, 'service_completed_successfully', 'the API starts once the migrations succeeded')
  t.equal(migrate.depends_on?.postgres?.condition, 'service_healthy')
  t.equal(nginx.depends_on?.api?.condition, 'service_healthy')
  t.equal(String(api.environment?.MIGRATE_ON_START), 'false', 'the API does not migrate: its role cannot')
  t.match(String(api.environment?.PUBLIC_ORIGIN), /^https:\/\//, 'the API knows its own https origin (production requires it)')
  t.match(String(api.environment?.CORS_ORIGINS), /:\?/, 'CORS_ORIGINS must be set in deploy/.env (production requires it)')
  const published = (nginx.ports ?? []).map(String)
  t.ok(published.some((port) => /(^|:)80$/.test(port)) && published.some((port) => /(^|:)443$/.test(port)), 'Nginx publishes 80 and 443')
  for (const name of ['postgres', 'migrate', 'api'] as const) t.notOk(services[name]?.ports, `${name} publishes no port`)

  // A secret may only arrive through ${VARIABLE} interpolation from the git-ignored deploy/.env.
  const secretName = /PASSWORD|SECRET|TOKEN|KEY/i
  for (const [serviceName, service] of Object.entries(services)) {
    for (const [name, raw] of Object.entries(service.environment ?? {})) {
      const value = String(raw)
      if (secretName.test(name)) t.match(value, /^\$\{[A-Z0-9_]+(:?[?-][^}]*)?\}$/, `${serviceName}.${name} comes from the env file`)
      const credentials = /^[a-z]+:\/\/([^@/]*)@/.exec(value)?.[1]
      if (credentials?.includes(':') === true) t.match(credentials.split(':')[1], /^\$\{[A-Z0-9_]+(:?[?-][^}]*)?\}$/, `${serviceName}.${name}: the URL's password comes from the env file`)
    }
  }
  const gitignored = spawnSync('git', ['check-ignore', '-q', 'deploy/.env'], { cwd: root })
  t.equal(gitignored.status, 0, 'deploy/.env is git-ignored')
  const example = read('env.example')
  for (const line of example.split('\n').filter((line) => /^[A-Z_]+=/.test(line))) {
    const [name = '', value = ''] = line.split(/=(.*)/)
    if (/PASSWORD|SECRET|TOKEN/.test(name)) t.match(value, /^(|change-me.*)$/, `env.example holds no real value for ${name}`)
  }
})

t.test('the Dockerfile: multi-stage, production dependencies only, non-root, health check', async (t) => {
  const dockerfile = read('Dockerfile')
  const instructions = dockerfile.split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'))
  const stages = instructions.filter((line) => /^FROM\s/i.test(line))
  t.ok(stages.length >= 2, 'more than one stage')
  t.ok(stages.every((line) => /\sAS\s+\w+/i.test(line)), 'named stages')
  const lastStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '))
  const user = /^USER\s+(\S+)/m.exec(lastStage)?.[1]
  t.ok(user !== undefined && !/^(root|0)(:|$)/.test(user), `the final stage runs as a non-root user (${user})`)
  t.match(lastStage, /^HEALTHCHECK\s[^\n]*(\\\n[^\n]*)*\/api\/health\/ready/m, 'a health check on readiness')
  t.match(dockerfile, /npm ci[^\n]*--omit=dev/, 'production dependencies only in the image')
  t.notMatch(lastStage, /npm ci(?![^\n]*--omit=dev)/, 'no dev install in the final stage')
  t.match(lastStage, /^CMD .*dist\/src\/server\.js/m)
})

t.test('the systemd template unit', async (t) => {
  const unit = read('systemd/api@.service')
  const settings = new Map<string, string[]>()
  for (const line of unit.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim())
    if (match) settings.set(match[1]!, [...(settings.get(match[1]!) ?? []), match[2]!])
  }
  const one = (key: string) => settings.get(key)?.[0]
  for (const [key, value] of Object.entries({
    NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes', Restart: 'on-failure',
  })) t.equal(one(key), value, `${key}=${value}`)
  t.ok(one('User') !== undefined && one('User') !== 'root', 'a dedicated user')
  t.ok(one('EnvironmentFile'), 'settings from an EnvironmentFile')
  t.match(one('RestrictAddressFamilies') ?? '', /AF_INET/)
  t.ok(Number(one('TimeoutStopSec')) > 10, 'stop waits longer than the API\'s 10 s grace')
  t.match(one('ExecStart') ?? '', /PORT=%i.*dist\/src\/server\.js/, 'the instance name is the port')

  const analyze = findProgram('systemd-analyze')
  t.test('systemd-analyze verify finds nothing to report in the units', { skip: analyze === undefined ? 'systemd-analyze is not installed' : false }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'deploy-unit-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const units = ['api@.service', 'cookie-auth-api-backup.service', 'cookie-auth-api-backup.timer']
    for (const name of units) writeFileSync(join(dir, name), read(`systemd/${name}`))
    // An instance too, as systemctl would load it.
    writeFileSync(join(dir, 'api@8086.service'), unit)
    const result = spawnSync(analyze!, ['verify', ...[...units, 'api@8086.service'].map((name) => join(dir, name))], { encoding: 'utf8', timeout: 30_000 })
    // verify exits 0 even on unknown keys: any message about the unit is a failure.
    const problems = `${result.stdout}${result.stderr}`.split('\n').filter((line) => line.includes(dir))
    t.equal(result.status, 0, 'exit status 0')
    t.same(problems, [], 'no message about the unit')
  })
})

// ---------------------------------------------------------------------------------------------
// The live stack.

const serverUrl = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'

async function whyUnavailable (): Promise<string | undefined> {
  for (const program of ['nginx', 'openssl', 'psql']) {
    const missing = programSkip(t, program, `apt-get install ${program === 'psql' ? 'postgresql-client' : program}; .ci/run does it`)
    if (missing !== false) return missing
  }
  const admin = postgres(serverUrl, { max: 1, connect_timeout: 3, onnotice: () => {} })
  try {
    const [me] = await admin<Array<{ ok: boolean }>>`select rolsuper or rolcreaterole as ok from pg_roles where rolname = current_user`
    if (me?.ok !== true) return `the role in ${new URL(serverUrl).host} may not create roles`
  } catch (error) {
    return `no Postgres at ${new URL(serverUrl).host}: ${(error as Error).message}`
  } finally {
    await admin.end({ timeout: 1 })
  }
  return undefined
}

const unavailable = await whyUnavailable()

t.test('the real Nginx config in front of two API instances on Postgres', { skip: unavailable ?? false, timeout: 150_000 }, async (t) => {
  const started = Date.now()
  const tmp = mkdtempSync(join(tmpdir(), 'deploy-nginx-'))
  // Nginx workers (nobody/www-data when started as root) read the certificate dir and webroot.
  chmodSync(tmp, 0o755)
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
  // Teardowns run last-in first-out: clients close, then the processes stop, then the database
  // and roles are dropped, then the temporary folder goes.
  const children: ChildWithLogs[] = []

  const [httpPort, httpsPort, portA, portB] = [await freePort(), await freePort(), await freePort(), await freePort()] as [number, number, number, number]

  // A self-signed certificate for localhost, trusted by this test's client only.
  const certFile = join(tmp, 'cert.pem')
  const keyFile = join(tmp, 'key.pem')
  run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyFile, '-out', certFile])
  const ca = readFileSync(certFile, 'utf8')

  const acmeRoot = join(tmp, 'acme')
  const acmeToken = `token-${randomHex(8)}`
  mkdirSync(join(acmeRoot, '.well-known', 'acme-challenge'), { recursive: true })
  writeFileSync(join(acmeRoot, '.well-known', 'acme-challenge', acmeToken), `${acmeToken}.thumbprint`)
  const frontendRoot = join(deploy, 'frontend')

  // --- Postgres: fresh roles and database from roles.sql, migrated as the owner.
  const suffix = randomHex(6)
  const names = { owner: `deploy_owner_${suffix}`, app: `deploy_app_${suffix}`, db: `deploy_${suffix}` }
  const passwords = { owner: randomHex(24), app: randomHex(24) }
  t.teardown(async () => {
    const admin = postgres(serverUrl, { max: 1, onnotice: () => {} })
    try {
      await admin.unsafe(`drop database if exists ${names.db} with (force)`)
      await admin.unsafe(`drop role if exists ${names.app}`)
      await admin.unsafe(`drop role if exists ${names.owner}`)
    } finally {
      await admin.end({ timeout: 5 })
    }
  })
  run('psql', [serverUrl, '-X', '-q', '-v', `owner_role=${names.owner}`, '-v', `app_role=${names.app}`, '-v', `db_name=${names.db}`,
    '-v', `owner_password=${passwords.owner}`, '-v', `app_password=${passwords.app}`, '-f', join(deploy, 'db', 'roles.sql')], { cwd: root })
  const urlFor = (role: 'owner' | 'app') => {
    const url = new URL(serverUrl)
    url.username = names[role]
    url.password = passwords[role]
    url.pathname = `/${names.db}`
    return url.toString()
  }
  // SIGTERM (Nginx's fast shutdown takes its workers along; a SIGKILLed master would orphan them).
  t.teardown(async () => { await Promise.all(children.map((child) => child.stop('SIGTERM', 10_000))) })
  const ownerSql = postgres(urlFor('owner'), { max: 1, onnotice: () => {} })
  const appSql = postgres(urlFor('app'), { max: 1, onnotice: () => {} })
  t.teardown(async () => { await Promise.all([ownerSql.end({ timeout: 5 }), appSql.end({ timeout: 5 })]) })

  const jwtSecret = randomHex(48)
  const baseEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmp, NODE_ENV: 'production', JWT_SECRET: jwtSecret, ENCRYPTION_KEY: randomHex(48), DATA_DIR: join(tmp, 'state') }
  // The production sequence: the owner migrates (`npm run db:migrate` runs this file once built).
  run(process.execPath, ['--import', 'tsx', 'src/cli/migrate.ts'], { cwd: root, env: { ...baseEnv, DATABASE_URL: urlFor('owner') }, timeoutMs: 90_000 })

  // --- Two API instances as the runtime role, production settings, behind Nginx only.
  const apiEnv = (port: number) => ({
    ...baseEnv,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: urlFor('app'),
    MIGRATE_ON_START: 'false',
    TRUST_PROXY: '127.0.0.1',
    CORS_ORIGINS: 'https://app.example.test',
    PUBLIC_ORIGIN: `https://localhost:${httpsPort}`,
    DOCS: 'false',
    LOG_LEVEL: 'info',
    // The rolling-restart client (127.0.0.5) sends thousands of requests in seconds: that scenario is
    // about restarts, not the global rate limit, which a fast machine would otherwise reach.
    RATE_LIMIT_ALLOWLIST: ROLLING_CLIENT,
  })
  const apiPorts = { A: portA, B: portB }
  const instances: Record<'A' | 'B', ChildWithLogs> = {} as Record<'A' | 'B', ChildWithLogs>
  const startInstance = async (name: 'A' | 'B') => {
    // tsx runs the current source: dist/ may be stale or absent (CI does not build before testing).
    const child = new ChildWithLogs(name, process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: root, env: apiEnv(apiPorts[name]), logFile: join(tmp, `api-${name}.log`),
    })
    children.push(child)
    instances[name] = child
    await waitFor(`API ${name} ready`, async () => (await request({ port: apiPorts[name], path: '/api/health/ready' })).status === 200,
      60_000, () => child.isRunning)
    return child
  }
  await Promise.all([startInstance('A'), startInstance('B')])

  // --- Nginx: the rendered site inside a minimal main config of its own (prefix, pid, logs, temp).
  const site = run(process.execPath, [join(deploy, 'nginx', 'render.mjs')], {
    env: {
      PATH: baseEnv.PATH,
      SERVER_NAME: 'localhost',
      HTTP_PORT: String(httpPort),
      HTTPS_PORT: String(httpsPort),
      TLS_CERT: certFile,
      TLS_KEY: keyFile,
      ACME_ROOT: acmeRoot,
      FRONTEND_ROOT: frontendRoot,
      API_SERVERS: `127.0.0.1:${portA} 127.0.0.1:${portB}`,
    },
  })
  t.notMatch(site, /\$\{/, 'every placeholder was filled in')
  writeFileSync(join(tmp, 'site.conf'), site)
  const mimeTypes = ['/etc/nginx/mime.types', '/usr/local/etc/nginx/mime.types', '/usr/local/nginx/conf/mime.types'].find((file) => {
    try { return statSync(file).isFile() } catch { return false }
  })
  writeFileSync(join(tmp, 'nginx.conf'), [
    process.getuid?.() === 0 ? 'user root;' : '',
    `pid ${join(tmp, 'nginx.pid')};`,
    'error_log stderr warn;',
    'worker_processes 1;',
    'events { worker_connections 256; }',
    'http {',
    mimeTypes === undefined ? '' : `  include ${mimeTypes};`,
    '  default_type application/octet-stream;',
    `  access_log ${join(tmp, 'access.log')};`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${join(tmp, `${kind}_temp`)};`),
    `  include ${join(tmp, 'site.conf')};`,
    '}',
  ].join('\n'))
  const nginxBinary = findProgram('nginx')!
  run(nginxBinary, ['-t', '-q', '-p', `${tmp}/`, '-c', join(tmp, 'nginx.conf'), '-e', 'stderr'])
  const nginx = new ChildWithLogs('nginx', nginxBinary, ['-p', `${tmp}/`, '-c', join(tmp, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'], {
    cwd: tmp, env: { PATH: baseEnv.PATH }, logFile: join(tmp, 'nginx.log'),
  })
  children.push(nginx)
  await waitFor('Nginx listening', async () => (await request({ port: httpsPort, path: '/', ca })).status > 0, 15_000, () => nginx.isRunning)
  t.comment(`stack up in ${Date.now() - started} ms (https ${httpsPort}, instances ${portA} and ${portB})`)

  const viaNginx = (options: Omit<RequestOptions, 'port' | 'ca'>) => request({ ...options, port: httpsPort, ca })
  const direct = (name: 'A' | 'B', options: Omit<RequestOptions, 'port'>) => request({ ...options, port: apiPorts[name] })
  const jsonBody = (value: unknown) => ({ body: JSON.stringify(value), headers: { 'content-type': 'application/json' } })
  const withHeaders = (base: { body: string, headers: Record<string, string> }, headers: Record<string, string>) =>
    ({ body: base.body, headers: { ...base.headers, ...headers } })
  // A response can arrive before its log line has come through the pipe: wait for the lines.
  const untilLogged = (marker: string, count: number) => waitFor(`${count} log lines with ${marker}`,
    async () => instances.A.urlsWith(marker).length + instances.B.urlsWith(marker).length >= count, 5000).catch(() => {})
  const password = 'violet-Kettle-42-orbit'
  const register = async (username: string, localAddress: string) => {
    const answer = await viaNginx({ method: 'POST', path: '/api/auth/register', localAddress, ...jsonBody({ username, password }) })
    if (answer.status !== 201) throw new Error(`register ${username}: ${answer.status} ${answer.body}`)
  }
  const login = async (username: string, localAddress: string, headers: Record<string, string> = {}) =>
    viaNginx({ method: 'POST', path: '/api/auth/login', localAddress, ...withHeaders(jsonBody({ username, password }), headers) })

  t.test('port 80 answers ACME challenges and redirects everything else to HTTPS', async (t) => {
    const challenge = await request({ port: httpPort, path: `/.well-known/acme-challenge/${acmeToken}` })
    t.equal(challenge.status, 200)
    t.equal(challenge.body, `${acmeToken}.thumbprint`, 'the file from the webroot')
    t.match(challenge.headers['content-type'], /^text\/plain/)
    const missing = await request({ port: httpPort, path: '/.well-known/acme-challenge/absent' })
    t.equal(missing.status, 404, 'an unknown challenge is 404, not a redirect')
    for (const path of ['/', '/tasks?view=all', '/api/health']) {
      const answer = await request({ port: httpPort, path })
      t.equal(answer.status, 301, `${path} redirects`)
      t.equal(answer.headers.location, `https://localhost:${httpsPort}${path}`, 'to the same path on HTTPS')
    }
  })

  t.test('TLS 1.2 and 1.3 with the certificate from the config, HSTS on every answer, once', async (t) => {
    const home = await viaNginx({ path: '/' })
    t.equal(home.tlsProtocol, 'TLSv1.3', 'TLS 1.3 by default, certificate verified against the test CA')
    const tls12 = await viaNginx({ path: '/', tls: { maxVersion: 'TLSv1.2' } })
    t.equal(tls12.tlsProtocol, 'TLSv1.2', 'TLS 1.2 still accepted')
    // The client offers TLS 1.0/1.1 only (and allows weak settings): the server must refuse.
    await t.rejects(viaNginx({ path: '/', tls: { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' } }), 'TLS 1.1 refused')
    for (const [label, answer] of [['static', home], ['api', await viaNginx({ path: '/api/health' })], ['404', await viaNginx({ path: '/nothing-here' })]] as Array<[string, Answer]>) {
      t.equal(answer.headers['strict-transport-security'], 'max-age=63072000; includeSubDomains', `${label}: HSTS`)
      t.equal(answer.count('strict-transport-security'), 1, `${label}: one HSTS header, not Nginx's and the API's`)
      t.equal(answer.count('x-content-type-options'), 1, `${label}: one nosniff`)
    }
  })

  t.test('/ serves the static frontend from deploy/frontend', async (t) => {
    const home = await viaNginx({ path: '/' })
    t.equal(home.status, 200)
    t.match(home.headers['content-type'], /^text\/html/)
    t.equal(home.body, readFileSync(join(frontendRoot, 'index.html'), 'utf8'), 'the file itself')
    t.equal(home.headers['cache-control'], 'no-cache', 'revalidated on each load')
    t.equal(home.headers['access-control-allow-origin'], undefined)
    // The page may not be framed: frame-ancestors only works as a header.
    t.match(home.headers['content-security-policy'], /frame-ancestors 'none'/)
    t.match(home.headers['content-security-policy'], /default-src 'none'/)
    t.equal(home.headers['x-frame-options'], 'DENY')
    t.equal(home.headers['referrer-policy'], 'strict-origin-when-cross-origin')
    t.equal(home.count('content-security-policy'), 1)
    t.equal(home.headers['strict-transport-security'], 'max-age=63072000; includeSubDomains', 'HSTS kept beside the page headers')
  })

  t.test('the browser modules the build copies out of node_modules (the passkey library) are served as JavaScript', async (t) => {
    // `npm run build` itself (a no-op compile when it is current) copies them out of node_modules:
    // the copy is rewritten by it, not left from an earlier run (files other tests may be reading stay).
    const copied = join(projectRoot(), 'deploy', 'frontend', 'vendor', 'simplewebauthn', 'index.js')
    const before = Date.now()
    t.equal(spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: projectRoot(), stdio: 'ignore' }).status, 0, 'npm run build')
    t.ok(statSync(copied).mtimeMs >= before - 1000, 'the build wrote the copy')
    for (const file of ['index.js', 'methods/startAuthentication.js']) {
      const served = await viaNginx({ path: `/vendor/simplewebauthn/${file}` })
      t.equal(served.status, 200, file)
      t.match(served.headers['content-type'], /javascript/, `${file}: a module script needs a JavaScript type`)
      t.equal(served.body, readFileSync(join(vendorSource('simplewebauthn')!, file), 'utf8'), `${file}: the same copy`)
    }
  })

  t.test('the :80 redirect ignores a forged Host', async (t) => {
    const answer = await request({ port: httpPort, path: '/', headers: { host: 'evil.example' } })
    t.equal(answer.status, 301)
    t.equal(answer.headers.location, `https://localhost:${httpsPort}/`)
  })

  // gzip: on any compressible file big enough to be worth it (the frontend is being written).
  const compressible = readdirSync(frontendRoot, { recursive: true, encoding: 'utf8' })
    .filter((file) => ['.html', '.css', '.js', '.svg', '.json'].includes(extname(file)))
    .find((file) => statSync(join(frontendRoot, file)).size >= 1024)
  t.test('static files are served gzipped, API answers are not', { skip: compressible === undefined ? 'deploy/frontend has no compressible file of 1 KiB yet' : false }, async (t) => {
    const zipped = await viaNginx({ path: `/${compressible!.split('\\').join('/')}`, headers: { 'accept-encoding': 'gzip' } })
    t.equal(zipped.status, 200)
    t.equal(zipped.headers['content-encoding'], 'gzip', `${compressible} is served gzipped`)
    t.match(zipped.headers.vary, /Accept-Encoding/i)
    const apiAnswer = await viaNginx({ path: '/api/health', headers: { 'accept-encoding': 'gzip' } })
    t.equal(apiAnswer.headers['content-encoding'], undefined, 'no compression next to secrets (BREACH)')
  })

  t.test('/api/ reaches both instances, and CORS comes from the API alone', async (t) => {
    const marker = `spread-${randomHex(4)}`
    for (let i = 0; i < 20; i++) {
      const answer = await viaNginx({ path: `/api/health?probe=${marker}-${i}` })
      t.equal(answer.status, 200, `request ${i}`)
    }
    await untilLogged(marker, 20)
    const servedByA = instances.A.urlsWith(marker).length
    const servedByB = instances.B.urlsWith(marker).length
    t.equal(servedByA + servedByB, 20, 'every request is in one instance\'s log')
    t.ok(servedByA >= 5 && servedByB >= 5, `the load is spread (A ${servedByA}, B ${servedByB})`)
    t.match(instances.A.urlsWith(marker)[0]?.req, { host: `localhost:${httpsPort}` }, 'the API sees the Host the browser used')

    const allowed = await viaNginx({ path: '/api/health', headers: { origin: 'https://app.example.test' } })
    t.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.test')
    t.equal(allowed.count('access-control-allow-origin'), 1, 'exactly one Access-Control-Allow-Origin')
    const preflight = await viaNginx({
      method: 'OPTIONS', path: '/api/tasks', headers: { origin: 'https://app.example.test', 'access-control-request-method': 'PATCH' },
    })
    t.equal(preflight.status, 204, 'a preflight reaches the API')
    t.equal(preflight.count('access-control-allow-origin'), 1)
    const foreign = await viaNginx({ path: '/api/health', headers: { origin: 'https://evil.example' } })
    t.equal(foreign.headers['access-control-allow-origin'], undefined, 'a foreign origin gets none')
  })

  t.test('a body over 1 MiB is refused by Nginx in the API\'s error shape', async (t) => {
    const huge = JSON.stringify({ username: 'huge_body', password: 'x'.repeat(1024 * 1024) })
    const answer = await viaNginx({ method: 'POST', path: '/api/auth/register', body: huge, headers: { 'content-type': 'application/json' } })
    t.equal(answer.status, 413)
    t.match(answer.json(), { statusCode: 413, error: 'Payload Too Large', code: 'FST_ERR_CTP_BODY_TOO_LARGE' })
    const fits = await viaNginx({ method: 'POST', path: '/api/auth/register', ...jsonBody({ username: 'fits', password: 'x'.repeat(300) }) })
    t.equal(fits.status, 400, 'a body under the limit reaches the API (which refuses the long password itself)')
  })

  t.test('the API sees the client\'s address through X-Forwarded-For: rate limits and records key on it', async (t) => {
    // Every connection to the instances comes from Nginx (127.0.0.1). The clients here bind other
    // loopback addresses, and the first one also sends a forged X-Forwarded-For.
    const attacker = '127.0.0.2'
    const bystander = '127.0.0.3'
    const forged = '203.0.113.9'
    const bystanderName = `bystander_${randomHex(3)}`
    await register(bystanderName, bystander)

    // 30 failed logins per minute per address, counted in each instance (no REDIS_URL here): the
    // attacker meets 429 once both instances have counted 30.
    const statuses: number[] = []
    for (let i = 0; i < 70 && statuses.slice(-3).join() !== '429,429,429'; i++) {
      const answer = await viaNginx({
        method: 'POST',
        path: '/api/auth/login',
        localAddress: attacker,
        ...withHeaders(jsonBody({ username: `nobody_${i}`, password: 'wrong-password-1' }), { 'x-forwarded-for': forged }),
      })
      statuses.push(answer.status)
      if (answer.status === 429) t.equal(answer.json().code, 'RATE_LIMITED')
    }
    const firstLimited = statuses.indexOf(429)
    t.ok(firstLimited >= 30, `the limit applies per client address (first 429 after ${firstLimited} failures)`)
    t.same(statuses.slice(-3), [429, 429, 429], 'the attacker is rate limited')
    t.ok(statuses.every((status) => status === 401 || status === 429), 'only 401s and 429s')

    const signedIn = await login(bystanderName, bystander)
    t.equal(signedIn.status, 200, 'another client, behind the same Nginx, is not limited')
    const jar = updateJar({}, signedIn)
    const sessions = await viaNginx({ path: '/api/auth/sessions', localAddress: bystander, headers: { cookie: cookieHeader(jar) } })
    t.match(sessions.json(), { items: [{ ip: bystander, current: true }] }, 'the sessions list shows the client\'s address')

    const failedFrom = await ownerSql<Array<{ ip: string }>>`select distinct ip from audit_events where type = 'login_failed'`
    t.same(failedFrom.map((row) => row.ip), [attacker], 'the audit log records the client, neither Nginx\'s address nor the forged one')
    const loggedLogins = () => [...instances.A.lines, ...instances.B.lines]
      .filter((line) => line.msg === 'incoming request' && line.req?.url === '/api/auth/login')
      .map((line) => line.req?.remoteAddress)
    // The instances' log lines arrive through pipes: wait for the bystander's sign-in, the last one sent.
    await waitFor('the sign-ins reached the request log', async () => loggedLogins().includes(bystander), 10_000).catch(() => {})
    const logged = loggedLogins()
    t.notOk(logged.includes('127.0.0.1') || logged.includes(forged), 'the request log never names Nginx or the forged address')
    t.ok(logged.includes(attacker) && logged.includes(bystander), 'it names the clients')
  })

  t.test('a session signed out through one instance is refused by the other on the next request', async (t) => {
    const client = '127.0.0.4'
    const name = `alice_${randomHex(3)}`
    await register(name, client)
    const origin = `https://localhost:${httpsPort}`
    const crossSite = await login(name, client, { origin: 'https://evil.example' })
    t.equal(crossSite.status, 403, 'a foreign Origin is refused (CSRF)')
    t.equal(crossSite.json().code, 'CSRF_ORIGIN')
    const signedIn = await login(name, client, { origin })
    t.equal(signedIn.status, 200, 'the API recognises its own origin through Nginx (Host and X-Forwarded-Proto)')
    const setCookies = [signedIn.headers['set-cookie'] ?? []].flat()
    t.ok(setCookies.some((line) => /^__Host-access_token=.*;\s*Secure/i.test(line)), '__Host- access cookie, Secure')
    t.ok(setCookies.some((line) => /^__Secure-refresh_token=.*;\s*Secure/i.test(line)), '__Secure- refresh cookie, Secure')
    const jar = updateJar({}, signedIn)
    const cookie = cookieHeader(jar)

    for (const name of ['A', 'B'] as const) {
      t.equal((await direct(name, { path: '/api/auth/me', headers: { cookie } })).status, 200, `instance ${name} accepts the session`)
    }
    const marker = `logout-${randomHex(4)}`
    const out = await viaNginx({ method: 'POST', path: `/api/auth/logout?m=${marker}`, localAddress: client, headers: { cookie, origin } })
    t.equal(out.status, 204, 'signed out through Nginx')
    await untilLogged(marker, 1)
    const signedOutBy = instances.A.urlsWith(marker).length > 0 ? 'A' : 'B'
    const other = signedOutBy === 'A' ? 'B' : 'A'
    t.equal(instances[signedOutBy].urlsWith(marker).length, 1, `instance ${signedOutBy} handled the sign-out`)
    const refused = await direct(other, { path: '/api/auth/me', headers: { cookie } })
    t.equal(refused.status, 401, `instance ${other} refuses the same access token at once`)
    t.equal(refused.json().code, 'SESSION_REVOKED')
    for (let i = 0; i < 2; i++) {
      t.equal((await viaNginx({ path: '/api/auth/me', localAddress: client, headers: { cookie } })).status, 401, 'and so does every instance through Nginx')
    }
  })

  t.test('a rolling restart behind Nginx fails no request', async (t) => {
    const client = ROLLING_CLIENT
    const name = `roller_${randomHex(3)}`
    await register(name, client)
    const cookie = cookieHeader(updateJar({}, await login(name, client)))

    // A bounded loop of authenticated GETs (a database read each), 4 at a time, through Nginx.
    const loopState = { stopping: false }
    let sent = 0
    const failures: string[] = []
    const MAX_REQUESTS = 4000
    const deadline = Date.now() + 90_000
    const worker = async () => {
      while (!loopState.stopping && sent < MAX_REQUESTS && Date.now() < deadline) {
        sent++
        try {
          const answer = await viaNginx({ path: `/api/auth/me?loop=${sent}`, localAddress: client, headers: { cookie }, timeoutMs: 20_000 })
          if (answer.status !== 200) failures.push(`${answer.status} ${answer.body.slice(0, 120)}`)
        } catch (error) {
          failures.push((error as Error).message)
        }
      }
    }
    const loop = Promise.all([worker(), worker(), worker(), worker()])

    for (const name of ['A', 'B'] as const) {
      // Traffic flowing through both instances before this one stops: 20 more requests answered.
      const flowing = sent + 20
      await waitFor('the loop is under way', async () => sent >= flowing, 30_000)
      const instance = instances[name]
      // A request in flight on this instance when SIGTERM arrives (headers in, half the body still
      // to come): the instance must read the rest and answer it before it exits.
      const inflightMarker = `inflight-${randomHex(4)}`
      const inflight = startSlowPost(apiPorts[name], `/api/auth/login?m=${inflightMarker}`,
        JSON.stringify({ username: `nobody_${name}`, password: 'wrong-password-1' }))
      await waitFor('the in-flight request reached the instance', async () => instance.urlsWith(inflightMarker).length > 0, 10_000)
      const beforeStop = Date.now()
      const stopped = instance.stop('SIGTERM', 15_000)
      await waitFor('the instance began shutting down', async () => instance.lines.some((line) => line.msg === 'shutting down'), 5000)
      inflight.finish()
      const inflightAnswer = await inflight.answer
      t.equal(inflightAnswer.status, 401, 'the request in flight when SIGTERM came was answered (a wrong password: 401), not cut')
      t.equal(await stopped, 0, `instance ${name} then exits 0 (${Date.now() - beforeStop} ms after SIGTERM)`)
      const sentBeforeRestart = sent
      await startInstance(name)
      t.ok(sent > sentBeforeRestart, `requests kept flowing while ${name} was down (${sent - sentBeforeRestart})`)
    }
    const restartedMarker = 'loop='
    // Both restarted instances take loop requests again before the loop stops.
    await waitFor('both restarted instances serve the loop', async () =>
      instances.A.urlsWith(restartedMarker).length > 0 && instances.B.urlsWith(restartedMarker).length > 0, 30_000).catch(() => {})
    loopState.stopping = true
    await loop
    t.ok(sent >= 50, `the loop ran (${sent} requests)`)
    t.same(failures, [], `no request failed out of ${sent}`)
    t.ok(instances.A.urlsWith(restartedMarker).length > 0 && instances.B.urlsWith(restartedMarker).length > 0, 'both restarted instances serve again')
  })

  t.test('the runtime role reads and writes rows but cannot change the schema', async (t) => {
    const [count] = await appSql<Array<{ n: number }>>`select count(*)::int as n from users`
    t.ok((count?.n ?? 0) > 0, 'it reads rows')
    const refusals: Array<[string, string]> = [
      ['create a table', 'create table intruder (id int)'],
      ['create a table in the schema explicitly', 'create table public.intruder (id int)'],
      ['drop a table', 'drop table tasks'],
      ['alter a table', 'alter table users add column is_admin boolean'],
      ['truncate a table', 'truncate audit_events'],
      ['create a schema', 'create schema intruder'],
      ['create a temporary table', 'create temporary table intruder (id int)'],
      ['read the migration journal', 'select * from drizzle.__drizzle_migrations'],
      // The audit log is append-only for the runtime role.
      ['rewrite the audit log', "update audit_events set type = 'nothing_happened'"],
      ['delete from the audit log', 'delete from audit_events'],
    ]
    for (const [label, statement] of refusals) {
      await t.rejects(appSql.unsafe(statement), { code: '42501' }, `it cannot ${label}`)
    }
    const [tables] = await ownerSql<Array<{ n: number }>>`select count(*)::int as n from information_schema.tables where table_schema = 'public'`
    t.equal(tables?.n, Object.values(schema).filter((value) => is(value, PgTable)).length, 'the schema is as the migrations left it: every table schema.ts declares')
    const [events] = await appSql<Array<{ n: number }>>`select count(*)::int as n from audit_events`
    t.ok((events?.n ?? 0) > 0, 'it reads the audit log')
    await appSql`insert into audit_events (type, detail) values ('deploy_check', '{}'::jsonb)`
    t.pass('it appends to the audit log')
    // Running roles.sql again (a password rotation) grants on every table: the audit log stays append-only.
    run('psql', [serverUrl, '-X', '-q', '-v', `owner_role=${names.owner}`, '-v', `app_role=${names.app}`, '-v', `db_name=${names.db}`,
      '-v', `owner_password=${passwords.owner}`, '-v', `app_password=${passwords.app}`, '-f', join(deploy, 'db', 'roles.sql')], { cwd: root })
    await t.rejects(appSql`delete from audit_events`, { code: '42501' }, 'still append-only after roles.sql ran again')
  })

  t.teardown(() => { t.comment(`live deployment checks took ${Date.now() - started} ms`) })
})

if (unavailable !== undefined) t.comment(`live Nginx checks skipped: ${unavailable}`)
