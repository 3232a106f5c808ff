import { TracingConfigError, tracingSettings } from './observability/tracing.js';

/**
 * `npm start` / `npm run dev`: the web and worker roles (ARMALO_ROLE=web|worker|all) in one process.
 *
 * Tracing first, the app after: when an OTLP endpoint is configured (DESIGN §5 "Tracing") the
 * OpenTelemetry SDK starts before any module of the app is imported, so the Postgres, Redis and
 * HTTP instrumentations are in place before those clients load. When it is not, no OTel module is
 * loaded at all. Hence the dynamic imports: a static import would load the app first.
 */
let settings: ReturnType<typeof tracingSettings>;
try {
  settings = tracingSettings(process.env);
} catch (err) {
  if (!(err instanceof TracingConfigError)) throw err;
  console.error(`armalo chat-ops cannot start: ${err.message}`);
  process.exit(1);
}
const tracing = settings ? (await import('./observability/otel.js')).startTracing(settings) : undefined;
const { serve } = await import('./serve.js');
await serve({ onStopped: tracing ? () => tracing.shutdown() : undefined, tracing: settings });
