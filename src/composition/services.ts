import type { Config } from '../config/env.js';
import type { Clock } from '../core/clock.js';
import type { LimitedLog, Logger } from '../observability/logger.js';
import { createMetrics, type Metrics } from '../observability/metrics.js';
import type { Policy } from '../policy/policy.schema.js';
import type { PolicyHolder } from '../policy/policy-holder.js';
import { createRedis } from '../queue/connection.js';
import { AgentService, type PermissionChangePublisher } from '../agents/agents.service.js';
import { PermissionView, publishApprovalsChange, publishPermissionChange } from '../permissions/permission-view.js';
import { OutboxRelay } from '../outbox/outbox-relay.js';
import { countParked, countUnpublished } from '../outbox/outbox.repository.js';
import { ApprovalService } from '../approvals/approvals.service.js';
import { InboundEvents } from '../webhooks/inbound-events.js';
import { TrustService } from '../trust/trust.service.js';
import { PacketService } from '../packets/packets.service.js';
import type { PacketRenderers } from '../http/routes/packets.routes.js';
import { ChatCommands } from '../chat/chat-commands.js';
import { FleetService } from '../fleet/fleet.service.js';
import { SlackDirectory } from '../slack/slack-directory.js';
import { ConsoleSessions } from '../console/console-sessions.js';
import type { AppOptions } from '../app.js';
import type { Lifecycle } from './lifecycle.js';
import { openConnections, type Connections } from './connections.js';

/** Everything both roles share: connections, the permission view (web role), the use cases. */
export interface Services extends Connections {
  config: Config;
  clock: Clock;
  logger: Logger;
  limitedLog: LimitedLog;
  /** The one policy object every service holds; a live reload swaps its contents. */
  holder: PolicyHolder;
  policy: Policy;
  view: PermissionView | undefined;
  /** The outbox relay (worker role): created here so a commit can wake it, started with the workers. */
  relay: OutboxRelay | undefined;
  approvals: ApprovalService;
  agents: AgentService;
  trust: TrustService;
  inbound: InboundEvents;
  packets: PacketService;
  commands: ChatCommands;
  fleet: FleetService;
  directory: SlackDirectory;
  /** Web console sign-in links and sessions. */
  consoleSessions: ConsoleSessions;
  metrics: Metrics;
}

/** The packet renderers, loaded on first use (the PDF library is large). */
export async function loadPacketRenderers(): Promise<PacketRenderers> {
  const [{ renderPacketMarkdown }, { renderPacketPdf }] = await Promise.all([import('../packets/render-markdown.js'), import('../packets/render-pdf.js')]);
  return { markdown: renderPacketMarkdown, pdf: renderPacketPdf };
}

export async function createServices(
  base: { config: Config; options: AppOptions; clock: Clock; logger: Logger; limitedLog: LimitedLog; holder: PolicyHolder },
  lifecycle: Lifecycle,
): Promise<Services> {
  const { config, options, clock, logger, holder } = base;
  const policy = holder.policy;
  const connections = await openConnections(config, lifecycle, base.limitedLog);
  const { db, producer, queues } = connections;
  const channel = `${config.queuePrefix}:permissions`;
  let view: PermissionView | undefined;
  if (config.role !== 'worker') {
    const subscriber = lifecycle.redis(createRedis(config.redisUrl));
    view = new PermissionView({ db, subscriber, publisher: producer, channel, clock, logger, staleAfterMs: config.viewStaleAfterMs, heartbeatMs: options.heartbeatMs });
    await view.start();
    const started = view;
    lifecycle.onStop(() => started.stop());
  }
  const publisher: PermissionChangePublisher = view ?? { publishChanged: (agentId, version) => publishPermissionChange(producer, channel, agentId, version) };
  const relay = config.role !== 'web' ? new OutboxRelay({ db, databaseUrl: config.databaseUrl, queues, clock, logger, pollMs: options.relayPollMs, skipEvents: !config.eventsWebhook }) : undefined;

  // Approval request changes reach every replica's view (the decision path reads them from memory).
  const approvalsChanged = view ? (agentId: string) => view.publishApprovalsChanged(agentId) : (agentId: string) => publishApprovalsChange(producer, channel, agentId);
  const approvals = new ApprovalService({ db, clock, policy, callbackHosts: config.callbackHosts, onChanged: approvalsChanged });
  // Held webhook events (for agents unknown when they came) apply once their agent is registered.
  const agents = new AgentService({
    db,
    clock,
    publisher,
    onOutboxWrite: () => relay?.written(),
    approvals,
    onRegistered: (id) => inbound.applyHeld(id),
    // This process's relay would only mark registrations' events published (no webhook): written so.
    eventsRecordedOnly: relay !== undefined && !config.eventsWebhook,
  });
  const trust = new TrustService({ db, clock, settings: () => policy.trust, publisher });
  const inbound = new InboundEvents({ db, clock, trust, logger });
  const packets = new PacketService({ db, clock, policy });
  const consoleSessions = new ConsoleSessions({ db, clock, publicUrl: config.publicUrl });
  const fleet = new FleetService({ db, clock, publisher, onOutboxWrite: () => relay?.written(), approvals, restoreRule: () => policy.permissions.restore, logger });
  // A containment's records being written when the process stops are finished first (the database closes after).
  lifecycle.onStop(() => fleet.settled());
  const commands = new ChatCommands({ db, clock, agents, policy, approvals, trust, packets, consoleLinks: consoleSessions, fleet });
  const directory = new SlackDirectory({ db, clock, policy });
  const metrics = createMetrics({
    queueCounts: async () => ({
      events: await queues.events.getJobCounts('waiting', 'active', 'delayed', 'failed'),
      timers: await queues.timers.getJobCounts('waiting', 'active', 'delayed', 'failed'),
      notify: await queues.notify.getJobCounts('waiting', 'active', 'delayed', 'failed'),
    }),
    outboxPending: () => countUnpublished(db),
    outboxParked: () => countParked(db),
    viewFresh: view ? () => view.isFresh() : undefined,
    policyHash: () => holder.hash,
  });
  return { ...connections, config, clock, logger, limitedLog: base.limitedLog, holder, policy, view, relay, approvals, agents, trust, inbound, packets, commands, fleet, directory, consoleSessions, metrics };
}
