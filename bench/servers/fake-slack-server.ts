/**
 * Child process: a minimal fake Slack Web API (see bench/lib/fake-slack.ts), in its own process
 * so the notices our app's worker posts do not run on the benchmark's event loop. With the options
 * POST_PER_SECOND and POST_BURST it rate limits chat.postMessage per channel, as Slack does.
 */
import type { Server } from 'node:http';
import { createFakeSlack, listen, type PostLimit } from '../lib/fake-slack.js';
import { serveChild } from '../lib/ipc.js';

let server: Server | undefined;

serveChild(
  async (options) => {
    let limit: PostLimit | undefined;
    if (options.POST_PER_SECOND !== undefined) {
      limit = { perSecond: Number(options.POST_PER_SECOND), burst: Number(options.POST_BURST ?? 1) };
      if (!(limit.perSecond > 0) || !(limit.burst >= 1)) throw new Error(`bad post limit ${JSON.stringify(options)}`);
    }
    server = createFakeSlack(limit).server;
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
