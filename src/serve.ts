import { loadConfig, ConfigError } from './config/env.js';
import { startApp, StartupError } from './app.js';
import { PolicyError } from './policy/load-policy.js';
import type { TracingSettings } from './observability/tracing.js';

/**
 * The service: the web and worker roles (ARMALO_ROLE=web|worker|all) in one process, stopped on
 * SIGTERM/SIGINT. `src/main.ts` starts tracing (when configured) and then imports this file.
 */
export async function serve(options: { onStopped?: () => Promise<void>; tracing?: TracingSettings } = {}): Promise<void> {
  let app: Awaited<ReturnType<typeof startApp>>;
  try {
    app = await startApp(loadConfig());
  } catch (err) {
    if (err instanceof ConfigError || err instanceof StartupError || err instanceof PolicyError) {
      console.error(`armalo chat-ops cannot start: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
  if (options.tracing) app.logger.info({ endpoint: options.tracing.endpoint, serviceName: options.tracing.serviceName }, 'tracing on: spans are exported over OTLP/HTTP');
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.logger.info({ signal }, 'stopping');
    // Finish in-flight requests and jobs; give up after 20 s.
    setTimeout(() => process.exit(1), 20_000).unref();
    void app
      .stop()
      // Spans still buffered (the last requests, the shutdown itself) go out before we exit.
      .then(() => options.onStopped?.())
      .catch((err: Error) => app.logger.error({ err: err.message }, 'stopping failed'))
      .then(() => process.exit(0));
  };
  // SIGHUP re-reads the policy file (validated as at start; an invalid file changes nothing).
  process.on('SIGHUP', () => {
    if (stopping) return;
    void app.reloadPolicy('SIGHUP').then(
      (result) => app.logger.info({ signal: 'SIGHUP', ...result }, `policy re-read on SIGHUP: ${result.outcome}`),
      (err: Error) => app.logger.error({ signal: 'SIGHUP', err: err.message }, 'policy re-read on SIGHUP failed'),
    );
  });
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

