/**
 * Child process: our web role, started the way `npm start` starts it (startApp(loadConfig(env))),
 * configured entirely by the parent's `start` message (not by this process's environment).
 * With BENCH_HEAP_SAMPLE=<file> in this process's environment, a sampling heap profile that also
 * keeps objects already collected (what a request allocates, not only what it retains) is taken
 * from start to stop and written to <file> (open it in Chrome DevTools, Memory tab).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { startApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/env.js';
import { serveChild } from '../lib/ipc.js';

let app: App | undefined;
const heapSample = process.env.BENCH_HEAP_SAMPLE;
const session = heapSample ? new Session() : undefined;

serveChild(
  async (env) => {
    if (session) {
      session.connect();
      await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    }
    app = await startApp(loadConfig(env));
    return app.port();
  },
  async () => {
    if (session && heapSample) {
      const { profile } = await session.post('HeapProfiler.stopSampling');
      writeFileSync(heapSample, JSON.stringify(profile));
    }
    await app?.stop();
  },
);
