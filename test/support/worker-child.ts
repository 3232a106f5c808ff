// A worker process of its own, so a test can kill it with SIGKILL in the middle of a job.
import { loadConfig } from '../../src/config/env.js';
import { startApp } from '../../src/app.js';
import { createLogger } from '../../src/observability/logger.js';

const app = await startApp(loadConfig(), {
  logger: createLogger({ level: 'warn' }),
  worker: { lockDurationMs: Number(process.env.TEST_LOCK_MS ?? 2000), stalledIntervalMs: 1000 },
});
process.send?.({ ready: true, port: app.port() });
