import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'

// Every series the API exposes, in one place, so that each feature records into the same names and
// an operator reads one list. Label values come only from the closed sets typed below (and route
// patterns, methods and status codes): never a user id, username, address or token, so the number of
// series stays bounded whatever the traffic.

export type SignInMethod = 'password' | 'passkey' | 'oidc'
/** `second_factor_required`: the password was right and a second factor is now owed (not yet a sign-in). */
export type SignInOutcome = 'success' | 'failure' | 'second_factor_required'
export type RefreshOutcome = 'rotated' | 'grace' | 'reused' | 'invalid'
export type RateLimitName = 'global' | 'credentials_ip' | 'credentials_account'
export type SecondFactorMethod = 'totp' | 'recovery_code'
export type SecondFactorOutcome = 'success' | 'failure'
export type PasskeyCeremony = 'registration' | 'authentication'
export type PasskeyOutcome = 'success' | 'failure'

/** A counter whose labels the compiler checks: an unbounded value (a username, say) does not type-check. */
export interface LabelledCounter<Labels extends Record<string, string>> {
  inc (labels: Labels, value?: number): void
}
export interface PlainCounter {
  inc (value?: number): void
}

export interface PoolStats {
  /** Connections the pool may open. */
  readonly size: number
  /** Connections serving a statement or a transaction now. */
  readonly inUse: number
  /** Statements and transactions waiting for a connection. */
  readonly waiting: number
}

export interface Metrics {
  readonly registry: Registry
  /** Every sign-in attempt that reached the credential check, by how it ended. */
  readonly signIns: LabelledCounter<{ method: SignInMethod, outcome: SignInOutcome }>
  /** POST /refresh answers: rotated, honoured within the grace period, reuse detected (theft), or invalid. */
  readonly refreshes: LabelledCounter<{ outcome: RefreshOutcome }>
  readonly rateLimitRefusals: LabelledCounter<{ limit: RateLimitName }>
  readonly secondFactorChecks: LabelledCounter<{ method: SecondFactorMethod, outcome: SecondFactorOutcome }>
  readonly passkeyCeremonies: LabelledCounter<{ ceremony: PasskeyCeremony, outcome: PasskeyOutcome }>
  readonly mailsSent: PlainCounter
  readonly mailsFailed: PlainCounter
  /** The mail sender says how to count its queue (outbox rows not yet sent); read at each scrape. */
  setMailsWaitingSource (count: () => number | Promise<number>): void
  /** The database says how to read its pool; read at each scrape. */
  setPoolSource (stats: () => PoolStats): void
  setBreakerOpen (isOpen: boolean): void
  observeRequest (method: string, route: string, statusCode: number, seconds: number): void
}

// From 1 ms (a cached answer) to 10 s (past every deadline the API sets): the p99 alert and the
// dashboard's latency panels read these.
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/**
 * A registry of our own (never prom-client's global one: several apps share a process in tests) with
 * every series declared. `withProcessMetrics` adds Node's default metrics (CPU, memory, GC, handles,
 * and `nodejs_eventloop_lag_*`, the event-loop delay), which sample the process and so are only worth
 * collecting when someone scrapes.
 */
export function createMetrics ({ withProcessMetrics }: { withProcessMetrics: boolean }): Metrics {
  const registry = new Registry()
  if (withProcessMetrics) {
    collectDefaultMetrics({ register: registry })
    // Gauges that prom-client names like counters (promtool rejects them); the same numbers stay
    // readable, by type, in nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
    for (const misnamed of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      registry.removeSingleMetric(misnamed)
    }
  }
  const registers = [registry]

  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers,
  })
  const durations = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from the request arriving to the answer being sent, by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: DURATION_BUCKETS,
    registers,
  })
  const counter = <Label extends string>(name: string, help: string, labelNames: readonly Label[]) =>
    new Counter({ name, help, labelNames, registers })
  const signIns = counter('auth_sign_ins_total', 'Sign-in attempts by method and outcome', ['method', 'outcome'])
  const refreshes = counter('auth_refreshes_total',
    'Refresh requests by outcome: rotated, grace (a just-replaced token honoured), reused (session revoked), invalid', ['outcome'])
  const rateLimitRefusals = counter('auth_rate_limit_refusals_total', 'Requests refused with 429, by the limit that refused them', ['limit'])
  const secondFactorChecks = counter('auth_second_factor_checks_total', 'Second-factor checks by method and outcome', ['method', 'outcome'])
  const passkeyCeremonies = counter('auth_passkey_ceremonies_total',
    'Passkey (WebAuthn) registrations and authentications by outcome', ['ceremony', 'outcome'])
  const mailsSent = new Counter({ name: 'auth_mails_sent_total', help: 'Mails handed to the SMTP server', registers })
  const mailsFailed = new Counter({ name: 'auth_mails_failed_total', help: 'Mail delivery attempts that failed', registers })

  let mailsWaitingSource: (() => number | Promise<number>) | undefined
  new Gauge({ // eslint-disable-line no-new
    name: 'auth_mails_waiting',
    help: 'Mails in the outbox not yet sent',
    registers,
    async collect () {
      if (mailsWaitingSource !== undefined) this.set(await mailsWaitingSource())
    },
  })

  let poolSource: (() => PoolStats) | undefined
  const poolGauge = (name: string, help: string, read: (stats: PoolStats) => number) => new Gauge({
    name,
    help,
    registers,
    collect () {
      if (poolSource !== undefined) this.set(read(poolSource()))
    },
  })
  poolGauge('auth_db_pool_size', 'Connections the database pool may open', (stats) => stats.size)
  poolGauge('auth_db_pool_in_use', 'Database connections serving a statement or transaction', (stats) => stats.inUse)
  poolGauge('auth_db_pool_waiting', 'Statements and transactions waiting for a database connection', (stats) => stats.waiting)

  const breakerOpen = new Gauge({ name: 'auth_db_breaker_open', help: '1 while the database breaker is open (requests answered 503 at once)', registers })
  breakerOpen.set(0)
  // A gauge misses an outage shorter than the scrape interval; the counter does not.
  const breakerOpenings = new Counter({ name: 'auth_db_breaker_openings_total', help: 'Times the database breaker opened', registers })

  // Every known label combination starts at 0: a series that first appears at 1 hides that first
  // event from rate() and increase(), and a dashboard shows "no data" instead of a flat zero.
  for (const method of ['password', 'passkey', 'oidc'] as const) {
    for (const outcome of ['success', 'failure', 'second_factor_required'] as const) signIns.inc({ method, outcome }, 0)
  }
  for (const outcome of ['rotated', 'grace', 'reused', 'invalid'] as const) refreshes.inc({ outcome }, 0)
  for (const limit of ['global', 'credentials_ip', 'credentials_account'] as const) rateLimitRefusals.inc({ limit }, 0)
  for (const outcome of ['success', 'failure'] as const) {
    for (const method of ['totp', 'recovery_code'] as const) secondFactorChecks.inc({ method, outcome }, 0)
    for (const ceremony of ['registration', 'authentication'] as const) passkeyCeremonies.inc({ ceremony, outcome }, 0)
  }

  return {
    registry,
    signIns,
    refreshes,
    rateLimitRefusals,
    secondFactorChecks,
    passkeyCeremonies,
    mailsSent,
    mailsFailed,
    setMailsWaitingSource (count) { mailsWaitingSource = count },
    setPoolSource (stats) { poolSource = stats },
    setBreakerOpen (isOpen) {
      breakerOpen.set(isOpen ? 1 : 0)
      if (isOpen) breakerOpenings.inc()
    },
    observeRequest (method, route, statusCode, seconds) {
      const labels = { method, route, status_code: statusCode }
      requests.inc(labels)
      durations.observe(labels, seconds)
    },
  }
}
