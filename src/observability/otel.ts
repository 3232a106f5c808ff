import { createRequire } from 'node:module';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { BullMQOtel } from 'bullmq-otel';
import { installTracing, type RelaySpan, type TraceCarrier, type TracingHooks, type TracingSettings } from './tracing.js';

/**
 * The OpenTelemetry SDK, loaded only when tracing is on (src/main.ts imports this file dynamically,
 * before the app). OTel 2.x SDK line: the 3.x line needs Node 22 (package.json pins the versions).
 *
 * What is traced:
 * - HTTP: every request the server answers (named after its route template, `http.route`; a
 *   decision only when its caller sends a traceparent if ARMALO_TRACE_DECISIONS=traced), and the
 *   outgoing calls made inside a trace: the Slack Web API (axios over node:http), the Bot
 *   Connector (node:http), `fetch` (webhooks, callbacks; undici). Health, readiness and metrics
 *   requests are not traced. An incoming `traceparent` is honoured (W3C trace context).
 * - Postgres queries and Redis commands made inside a trace (a parent span is required, so the
 *   outbox relay's polling and BullMQ's idle blocking reads do not start a trace each).
 * - BullMQ through its own telemetry option (bullmq-otel): a job's span is a child of the span
 *   that added it.
 * - The outbox: the trace context is stored with the row (outbox.trace_context) and the relay's
 *   hand-over continues it, so a notice posted by a job is in the trace of the command that caused it.
 *
 * Security: no span carries query parameters (pg `enhancedDatabaseReporting` stays off), Redis
 * arguments (job payloads) or HTTP headers; only statements, command names, routes and URLs.
 */

/** Paths polled by load balancers and Prometheus: a trace each would drown the useful ones. */
const UNTRACED_PATHS = new Set(['/healthz', '/readyz', '/metrics']);
/** The hot path (agents ask before every action): bench/tracing.bench.ts measures what a span per call costs. */
const DECISIONS_PATH = '/v1/decisions';
/**
 * Query parameters whose values never go into a server span: the console's one-time sign-in token
 * (`/console/login?t=…`), the signature of a trust packet's download link (`sig`), and the rest of
 * the HTTP instrumentation's own default list, which this option replaces.
 */
const REDACTED_QUERY_PARAMS = ['t', 'sig', 'Signature', 'AWSAccessKeyId', 'X-Goog-Signature', 'X-Amz-Signature', 'X-Amz-Credential', 'X-Amz-Security-Token'];

export interface TracingOptions extends TracingSettings {
  /** Tests: export here (synchronously, SimpleSpanProcessor) instead of OTLP over HTTP. */
  exporter?: SpanExporter;
}

export interface Tracing {
  /** Exports what is buffered and stops; spans after this are dropped. */
  shutdown(): Promise<void>;
  forceFlush(): Promise<void>;
}

/**
 * Starts tracing: provider, propagation, instrumentations, and the hooks the app calls
 * (src/observability/tracing.ts). Call it before the app's modules are imported.
 */
export function startTracing(options: TracingOptions): Tracing {
  const resource = defaultResource()
    .merge(detectResources({ detectors: [envDetector] }))
    .merge(resourceFromAttributes({ 'service.name': options.serviceName }));
  const processor: SpanProcessor = options.exporter
    ? new SimpleSpanProcessor(options.exporter)
    : // The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT itself; the
      // batch processor OTEL_BSP_*.
      new BatchSpanProcessor(new OTLPTraceExporter());
  const provider = new NodeTracerProvider({ resource, spanProcessors: [processor] });
  // The AsyncLocalStorage context manager and the W3C trace-context + baggage propagators.
  provider.register();

  const unregister = registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => {
          const path = (req.url ?? '').split('?')[0]!;
          if (UNTRACED_PATHS.has(path)) return true;
          // Decisions: with ARMALO_TRACE_DECISIONS=traced, only those whose caller traces them.
          return path === DECISIONS_PATH && options.decisions !== 'all' && req.headers.traceparent === undefined;
        },
        // An outgoing call outside any trace (a test's own client, a library's housekeeping) gets
        // no span of its own; the calls that matter happen inside a request's or a job's span.
        requireParentforOutgoingSpans: true,
        redactedQueryParamsServer: REDACTED_QUERY_PARAMS,
      }),
      new UndiciInstrumentation({ requireParentforSpans: true }),
      new PgInstrumentation({ requireParentSpan: true, enhancedDatabaseReporting: false }),
      // Only the command name: Redis arguments carry job payloads.
      new IORedisInstrumentation({ requireParentSpan: true, dbStatementSerializer: (command) => command }),
    ],
  });
  patchLoadedModules();

  const tracer = trace.getTracer('armalo-chatops');
  const bullmq = new BullMQOtel({ tracerName: 'bullmq' });

  const hooks: TracingHooks = {
    setRoute(method, route) {
      const span = trace.getActiveSpan();
      if (!span) return;
      span.setAttribute('http.route', route);
      span.updateName(`${method} ${route}`);
    },
    capture() {
      const active = context.active();
      if (!trace.getSpan(active)) return undefined;
      const carrier: TraceCarrier = {};
      propagation.inject(active, carrier);
      return carrier.traceparent ? carrier : undefined;
    },
    relaySpan(row) {
      const parent = row.carrier ? propagation.extract(ROOT_CONTEXT, row.carrier) : ROOT_CONTEXT;
      const span = tracer.startSpan(
        `outbox relay ${row.queue}.${row.jobName}`,
        {
          kind: SpanKind.PRODUCER,
          attributes: {
            'armalo.outbox.id': row.id,
            'messaging.destination.name': row.queue,
            'armalo.job.name': row.jobName,
            // How long the row waited in Postgres before the relay picked it up.
            ...(row.createdAt ? { 'armalo.outbox.wait_ms': Math.max(0, Date.now() - row.createdAt.getTime()) } : {}),
          },
        },
        parent,
      );
      const active: Context = trace.setSpan(parent, span);
      const carrier: TraceCarrier = {};
      propagation.inject(active, carrier);
      const relay: RelaySpan = {
        // The format bullmq-otel reads back (its context manager's getMetadata: the carrier as JSON).
        jobMetadata: JSON.stringify(carrier),
        run: (fn) => context.with(active, fn),
        end(error) {
          if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
          span.end();
        },
      };
      return relay;
    },
    detached: (fn) => context.with(ROOT_CONTEXT, fn),
    logFields() {
      const span = trace.getActiveSpan();
      if (!span) return {};
      const { traceId, spanId } = span.spanContext();
      return { trace_id: traceId, span_id: spanId };
    },
    bullmq,
  };
  installTracing(hooks);

  return {
    async forceFlush() {
      await provider.forceFlush();
    },
    async shutdown() {
      installTracing(undefined);
      unregister();
      await provider.shutdown();
    },
  };
}

/**
 * The pg and ioredis instrumentations patch those modules when they are `require`d. The app is ESM:
 * its `import pg from 'pg'` loads the CommonJS package without going through `require`, which the
 * hooks never see (the usual cure is the import-in-the-middle loader, `--import` with
 * `@opentelemetry/instrumentation/hook.mjs`). Requiring them once here, through the hooks, patches
 * the one copy every later import shares: the patches are on the client classes' prototypes
 * (pg's Client and pg-pool's Pool, ioredis' Redis), so no loader is needed, under node, tsx and vitest alike.
 */
function patchLoadedModules(): void {
  const require = createRequire(import.meta.url);
  require('pg');
  createRequire(require.resolve('pg'))('pg-pool');
  require('ioredis');
  require('http');
  require('https');
}
