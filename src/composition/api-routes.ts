import type { PermissionView } from '../permissions/permission-view.js';
import type { Router } from '../http/router.js';
import { DecisionService } from '../decisions/decision.service.js';
import { ConfirmationService } from '../confirmations/confirmations.service.js';
import { addAgentRoutes } from '../http/routes/agents.routes.js';
import { addConfirmationRoutes } from '../http/routes/confirmations.routes.js';
import { addAuditRoutes } from '../http/routes/audit.routes.js';
import { addIncidentRoutes } from '../http/routes/incidents.routes.js';
import { addConsoleSessionRoutes } from '../http/routes/console-sessions.routes.js';
import { addFleetRoutes } from '../http/routes/fleet.routes.js';
import { addDecisionRoutes } from '../http/routes/decisions.routes.js';
import { addApprovalRoutes } from '../http/routes/approvals.routes.js';
import { addTrustRoutes } from '../http/routes/trust.routes.js';
import { addPacketRoutes } from '../http/routes/packets.routes.js';
import { addPolicyRoutes } from '../http/routes/policy.routes.js';
import { addStreamRoutes } from '../stream/stream.routes.js';
import { addMcpRoutes } from '../mcp/mcp.routes.js';
import type { AppOptions } from '../app.js';
import type { Lifecycle } from './lifecycle.js';
import { loadPacketRenderers, type Services } from './services.js';

/** The web role's API: decisions (from the permission view), the change stream, MCP and the REST resources. */
export function addApiRoutes(router: Router, s: Services & { view: PermissionView }, options: AppOptions, lifecycle: Lifecycle): void {
  const { config, db, clock, logger, view, approvals, agents, policy } = s;
  const decisions = new DecisionService({ view, clock, metrics: s.metrics, rules: () => policy.routing, approvals, limitedLog: s.limitedLog });
  addDecisionRoutes(router, { view, decisions });
  const hub = addStreamRoutes(router, { view, db, clock, logger, routing: () => policy.routing, onStop: (stop) => lifecycle.onStop(stop), ...options.stream });
  // Connected SDKs answer check() from the routing in their snapshot: send them the new rules.
  const unsubscribe = s.holder.onChange(({ previous, current }) => {
    if (JSON.stringify(previous.routing) !== JSON.stringify(current.routing)) hub.routingChanged();
  });
  lifecycle.onStop(async () => unsubscribe());
  addMcpRoutes(router, { view, decisions, approvals, db, clock, logger, policy, publicUrl: config.publicUrl });
  addApprovalRoutes(router, { approvals, callbacksSigned: !!config.eventsWebhook, callbackHosts: config.callbackHosts, db });
  addTrustRoutes(router, { db, clock, trust: s.trust, webhookSecret: config.inboundWebhookSecret, inbound: s.inbound });
  addPacketRoutes(router, { packets: s.packets, renderers: loadPacketRenderers, clock, ...(config.links ? { links: config.links } : {}) });
  const confirmations = new ConfirmationService({ db, clock, policy, agents });
  addAgentRoutes(router, { db, clock, agents, confirmations });
  addFleetRoutes(router, { fleet: s.fleet, policy });
  addConfirmationRoutes(router, { confirmations, fleet: s.fleet });
  addAuditRoutes(router, { db });
  addIncidentRoutes(router, { db, clock });
  addConsoleSessionRoutes(router, { sessions: s.consoleSessions });
  addPolicyRoutes(router, { holder: s.holder });
  if (config.apiTokens.length === 0) logger.warn('ARMALO_API_TOKENS is empty: every /v1 call will be refused');
}
