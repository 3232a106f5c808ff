/**
 * Child process: a minimal fake Slack Web API (see bench/lib/fake-slack.ts), in its own process
 * so the notices our app's worker posts do not run on the benchmark's event loop.
 */
import type { Server } from 'node:http';
import { createFakeSlack, listen } from '../lib/fake-slack.js';
import { serveChild } from '../lib/ipc.js';

let server: Server | undefined;

serveChild(
  async (options) => {
    server = createFakeSlack().server;
    return listen(server, options.HOST ?? '127.0.0.1');
  },
  async () => {
    const s = server;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  },
);
