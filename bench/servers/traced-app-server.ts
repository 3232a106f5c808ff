/**
 * Child process: the service started as `src/main.ts` starts it, tracing first (when the `start`
 * message carries an OTLP endpoint) and the app imported only after, so the instrumentations are in
 * place before pg, ioredis and node:http load. Without an endpoint no OpenTelemetry module loads.
 */
import { serveChild } from '../lib/ipc.js';
import { tracingSettings } from '../../src/observability/tracing.js';

let stop: (() => Promise<void>) | undefined;

serveChild(
  async (env) => {
    // The SDK (exporter, sampler, batch processor) reads its OTEL_* variables from the environment.
    for (const [name, value] of Object.entries(env)) if (name.startsWith('OTEL_')) process.env[name] = value;
    const settings = tracingSettings(env);
    const tracing = settings ? (await import('../../src/observability/otel.js')).startTracing(settings) : undefined;
    const { startApp } = await import('../../src/app.js');
    const { loadConfig } = await import('../../src/config/env.js');
    const app = await startApp(loadConfig(env));
    stop = async () => {
      await app.stop();
      await tracing?.shutdown();
    };
    return app.port();
  },
  async () => stop?.(),
);
