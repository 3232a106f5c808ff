import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startTracing } from '../../src/observability/otel.js';

/**
 * Tracing on, in this test process, exporting to memory. Import it before the fixture (first
 * import of the file): the app's logger, queues and workers pick up tracing when they are built.
 * Each test file runs in a process of its own, so this does not reach other files.
 */
export const exporter = new InMemorySpanExporter();
// ARMALO_TRACE_DECISIONS=traced here (the default, `all`, is what test/tracing-otlp.test.ts runs).
export const tracing = startTracing({ serviceName: 'armalo-chatops-test', endpoint: 'memory', decisions: 'traced', exporter });

export const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
export const inTrace = (traceId: string): ReadableSpan[] => spans().filter((s) => s.spanContext().traceId === traceId);
export const parentId = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;

/** The span's ancestors, nearest first, within the spans finished so far. */
export function ancestors(span: ReadableSpan): ReadableSpan[] {
  const byId = new Map(spans().map((s) => [s.spanContext().spanId, s]));
  const chain: ReadableSpan[] = [];
  for (let p = parentId(span); p !== undefined; ) {
    const next = byId.get(p);
    if (!next) break;
    chain.push(next);
    p = parentId(next);
  }
  return chain;
}
