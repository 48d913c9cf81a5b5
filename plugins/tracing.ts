import { context, type Tracer } from '@opentelemetry/api'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    /** Set when OTEL_EXPORTER_OTLP_ENDPOINT is: the database layer makes its statement spans with it. */
    tracer: Tracer | undefined
  }
}

let isContextInstalled = false

/**
 * The request's context (its span) has to follow the request through promises and callbacks; Node's
 * AsyncLocalStorage carries it. One manager per process, whatever the number of apps in it.
 */
async function installContextManager () {
  if (isContextInstalled) return
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks')
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  isContextInstalled = true
}

/**
 * Tracing, when OTEL_EXPORTER_OTLP_ENDPOINT is set: a trace per request (@fastify/otel), a child span
 * per database statement (src/db/telemetry.ts), exported in batches over OTLP/HTTP, and the trace id
 * on every log line of the request. Registered first, so that its request span covers every other
 * hook. Unset, nothing here runs: no provider, no context manager, no hook.
 *
 * The provider is this app's own, not the process-wide global, so apps with different settings can
 * share a process (tests) and closing the app flushes its spans. No propagator is installed: an
 * incoming `traceparent` is ignored, so a client can neither choose our trace ids nor switch our
 * sampling off.
 */
export default fp(async (app) => {
  const { otelEndpoint, otelServiceName } = app.config
  if (otelEndpoint === undefined) {
    app.decorate('tracer', undefined)
    return
  }
  // The SDK is loaded only when tracing is on: a server without it never holds that code in memory.
  const [{ FastifyOtelInstrumentation }, { OTLPTraceExporter }, { resourceFromAttributes }, { BasicTracerProvider, BatchSpanProcessor }] = await Promise.all([
    import('@fastify/otel'), import('@opentelemetry/exporter-trace-otlp-http'), import('@opentelemetry/resources'), import('@opentelemetry/sdk-trace-base'),
  ])
  await installContextManager()
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': otelServiceName }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${otelEndpoint}/v1/traces` }))],
  })
  app.decorate('tracer', provider.getTracer('cookie-auth-api'))
  app.addHook('onClose', async () => { await provider.shutdown() })

  const instrumentation = new FastifyOtelInstrumentation({
    // Only preHandler hooks get spans of their own: they are where the session is checked (a database
    // statement), and a span per hook of every kind would outnumber the work it describes.
    instrumentHooks: ['preHandler'],
    requestHook (span, request) {
      const route = request.routeOptions.url
      span.updateName(route === undefined ? request.method : `${request.method} ${route}`)
      // @fastify/otel records the raw URL, query string and all (an OIDC code, a reset token): the
      // route pattern says what was asked without what was in it.
      span.setAttribute('url.path', route ?? '(unmatched)')
    },
  })
  instrumentation.setTracerProvider(provider)
  await app.register(instrumentation.plugin())

  // Fastify logs "incoming request" before any hook runs, when there is no trace yet; with tracing on
  // its request logging is off (src/app.ts) and these two lines stand in for it, trace id included.
  app.addHook('onRequest', (request, reply, done) => {
    const { span } = request.opentelemetry()
    if (span != null) {
      const log = request.log.child({ traceId: span.spanContext().traceId })
      request.log = log
      reply.log = log
    }
    request.log.info({ req: request }, 'incoming request')
    done()
  })
  app.addHook('onResponse', (_request, reply, done) => {
    reply.log.info({ res: reply, responseTime: reply.elapsedTime }, 'request completed')
    done()
  })
}, { name: 'tracing', dependencies: ['config'] })
