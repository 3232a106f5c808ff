import type { Telemetry } from 'bullmq';

/**
 * The seam between the app and OpenTelemetry (DESIGN §5 "Tracing").
 *
 * This file imports nothing from OpenTelemetry (a type from BullMQ only), on purpose: tracing is off unless an OTLP endpoint
 * is configured, and then no OTel module is loaded at all. The SDK lives in `otel.ts`, which
 * `src/main.ts` imports (dynamically) only when `tracingSettings` says tracing is on; it fills in
 * `tracing` below. Everywhere else the app asks `if (tracing)`: one read of a module binding, the
 * whole cost of tracing on the hot paths (the decision endpoint) when it is off.
 */

/** The W3C trace context of a span, as propagated in HTTP headers (`traceparent`, `tracestate`). */
export type TraceCarrier = Record<string, string>;

/** One outbox row being handed to BullMQ, continuing the trace of the request that wrote it. */
export interface RelaySpan {
  /** BullMQ's telemetry metadata for the job: the worker's span becomes a child of this one. */
  readonly jobMetadata: string;
  /** Runs `fn` with this span active (BullMQ's own producer span then nests under it). */
  run<T>(fn: () => T): T;
  end(error?: string): void;
}

export interface TracingHooks {
  /** Names the active HTTP server span after the route template (`http.route`, `POST /v1/agents/{agentId}`). */
  setRoute(method: string, route: string): void;
  /** The trace context to store with an outbox row: the active span's, or undefined outside any span. */
  capture(): TraceCarrier | undefined;
  /** A span for an outbox row's hand-over to its queue, a child of the context stored with the row. */
  relaySpan(row: { id: string; queue: string; jobName: string; createdAt?: Date; carrier: TraceCarrier | null | undefined }): RelaySpan;
  /** `trace_id` and `span_id` of the active span for a log line (pino's mixin), or nothing. */
  logFields(): { trace_id?: string; span_id?: string };
  /**
   * Runs `fn` outside any trace: work that serves many traces at once (the relay's batch) must not
   * join the trace of whoever happened to wake it.
   */
  detached<T>(fn: () => T): T;
  /** BullMQ's `telemetry` option for queues and workers (bullmq-otel). */
  readonly bullmq: Telemetry;
}

/** Set while tracing is on (by `startTracing` in otel.ts); undefined otherwise. */
export let tracing: TracingHooks | undefined;

export function installTracing(hooks: TracingHooks | undefined): void {
  tracing = hooks;
}

export const DEFAULT_SERVICE_NAME = 'armalo-chatops';

export interface TracingSettings {
  serviceName: string;
  /**
   * `POST /v1/decisions`, the hot path: `all` (the default) traces every one, like any request;
   * `traced` only those whose caller sends a `traceparent` (the caller's own trace asks for it), for
   * deployments where a span per decision costs more than it tells.
   */
  decisions: 'traced' | 'all';
  /** Where spans go, for the start-up log line (the exporter reads the OTEL_* variables itself). */
  endpoint: string;
}

/** A bad OTEL_* variable: named, so the operator knows what to fix. */
export class TracingConfigError extends Error {}

/**
 * Tracing is on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set
 * (and `OTEL_SDK_DISABLED` is not `true`, the standard switch). The endpoints must be http(s) URLs.
 */
export function tracingSettings(env: NodeJS.ProcessEnv): TracingSettings | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  let endpoint: string | undefined;
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT'] as const) {
    const value = env[name]?.trim();
    if (!value) continue;
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new TracingConfigError(`${name} is not a URL (expected e.g. http://collector:4318)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TracingConfigError(`${name} must be an http or https URL (OTLP over HTTP)`);
    // The per-signal variable is used as given; the general one gets /v1/traces appended (OTel spec).
    endpoint ??= name === 'OTEL_EXPORTER_OTLP_ENDPOINT' ? `${value.replace(/\/+$/, '')}/v1/traces` : value;
  }
  if (!endpoint) return undefined;
  const serviceName = env.OTEL_SERVICE_NAME?.trim() || DEFAULT_SERVICE_NAME;
  const decisions = env.ARMALO_TRACE_DECISIONS?.trim() || 'all';
  if (decisions !== 'traced' && decisions !== 'all') throw new TracingConfigError('ARMALO_TRACE_DECISIONS must be "all" (the default: every decision) or "traced" (only decisions whose caller sends a traceparent)');
  return { serviceName, decisions, endpoint: redactEndpoint(endpoint) };
}

/** A collector URL may carry credentials; the log line shows the host only. */
function redactEndpoint(raw: string): string {
  const url = new URL(raw);
  if (url.username || url.password) {
    url.username = '[redacted]';
    url.password = '';
  }
  url.search = '';
  return url.toString();
}
