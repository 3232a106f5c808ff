/**
 * Child process: the fake Slack Web API of the tests, set up for a benchmark (see bench/lib/fake-slack.ts), in its own process
 * so the notices our app's worker posts do not run on the benchmark's event loop. With the options
 * POST_PER_SECOND and POST_BURST it rate limits chat.postMessage per channel, as Slack does.
 */
import type { FakeSlack } from '../../test/support/fake-slack.js';
import { createFakeSlack, type PostLimit } from '../lib/fake-slack.js';
import { serveChild } from '../lib/ipc.js';

let slack: FakeSlack | undefined;

serveChild(
  async (options) => {
    let limit: PostLimit | undefined;
    if (options.POST_PER_SECOND !== undefined) {
      limit = { perSecond: Number(options.POST_PER_SECOND), burst: Number(options.POST_BURST ?? 1) };
      if (!(limit.perSecond > 0) || !(limit.burst >= 1)) throw new Error(`bad post limit ${JSON.stringify(options)}`);
    }
    slack = createFakeSlack(limit);
    await slack.start(options.HOST ?? '127.0.0.1');
    return slack.port();
  },
  async () => {
    await slack?.stop();
  },
);
