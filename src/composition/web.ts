import type { Server } from 'node:http';
import { createHttpServer } from '../http/server.js';
import { TokenAuthenticator } from '../http/auth.js';
import { Router } from '../http/router.js';
import { addOpsRoutes } from '../http/routes/ops.routes.js';
import { createSlackAdapter, type SlackAdapter } from '../slack/slack-app.js';
import { requestSlackHome } from '../slack/slack-home.js';
import { createTeamsAdapter } from '../teams/teams-app.js';
import type { AppOptions } from '../app.js';
import { addApiRoutes } from './api-routes.js';
import { addConsoleRoutes } from '../console/console.routes.js';
import { SharedSignInLimiter } from '../console/console-sessions.js';
import { listen, type Lifecycle } from './lifecycle.js';
import { loadPacketRenderers, type Services } from './services.js';

/**
 * The HTTP server every role runs (health, readiness, metrics) and, in the web role, the chat
 * adapters and the API.
 */
export async function startHttp(s: Services, options: AppOptions, lifecycle: Lifecycle): Promise<{ port: number; server: Server; slack: SlackAdapter | undefined }> {
  const { config, db, clock, logger, approvals, commands, view } = s;
  const web = config.role !== 'worker';
  const router = new Router();
  // Readiness pings on the fail-fast producer: with Redis away each probe answers 503 at once.
  addOpsRoutes(router, { db, redis: s.producer, metrics: s.metrics, view, role: config.role, policyHash: () => s.holder.hash });
  const slack = web
    ? createSlackAdapter({
        config,
        commands,
        directory: s.directory,
        logger,
        approvals,
        db,
        // Coalesced per person: opening the tab while a publish waits moves it up; while one runs, one more follows it.
        requestHome: (userId) => requestSlackHome(s.queues, userId, 'opened'),
      })
    : undefined;
  if (slack?.route) router.add(slack.route);
  const teams = web ? createTeamsAdapter({ config, db, clock, commands, logger, approvals }) : undefined;
  if (teams) router.add(teams.route);
  if (slack) {
    await slack.start();
    lifecycle.onStop(() => slack.stop());
  }
  if (web && view) addApiRoutes(router, { ...s, view }, options, lifecycle);
  // The web console for people: signed in from chat, the same use cases and policy as chat.
  if (web) addConsoleRoutes(router, { db, clock, logger, policy: s.policy, sessions: s.consoleSessions, commands, approvals, trust: s.trust, packets: s.packets, renderers: loadPacketRenderers, publicUrl: config.publicUrl, trustedProxyHops: config.trustedProxyHops, signInLimiter: new SharedSignInLimiter(s.producer, config.queuePrefix) });
  const server = createHttpServer({ router, auth: new TokenAuthenticator(config.apiTokens), logger, metrics: s.metrics });
  return { port: await listen(server, config, lifecycle), server, slack };
}
