/**
 * Child process: our web role, started the way `npm start` starts it (startApp(loadConfig(env))),
 * configured entirely by the parent's `start` message (not by this process's environment).
 */
import { startApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/env.js';
import { serveChild } from '../lib/ipc.js';

let app: App | undefined;

serveChild(
  async (env) => {
    app = await startApp(loadConfig(env));
    return app.port();
  },
  async () => {
    await app?.stop();
  },
);
