import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from './config/env.js';
import { createDb, type Db } from './db/database.js';
import { pendingMigrations } from './db/migrator.js';
import { systemClock, type Clock } from './core/clock.js';
import { createLimitedLog, createLogger, type Logger } from './observability/logger.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { loadPolicyFile } from './policy/load-policy.js';
import type { Policy } from './policy/policy.schema.js';
import { parsePolicyData } from './policy/load-policy.js';
import { PolicyHolder } from './policy/policy-holder.js';
import { PolicyWatcher, type ReloadOutcome } from './policy/policy-watcher.js';
import { createRedis } from './queue/connection.js';
import { closeQueues, createQueues, type Queues } from './queue/queues.js';
import { AgentService, type PermissionChangePublisher } from './agents/agents.service.js';
import { PermissionView, publishApprovalsChange, publishPermissionChange } from './permissions/permission-view.js';
import { DecisionService } from './decisions/decision.service.js';
import { OutboxRelay } from './outbox/outbox-relay.js';
import { countParked, countUnpublished } from './outbox/outbox.repository.js';
import { TokenAuthenticator } from './http/auth.js';
import { Router } from './http/router.js';
import { createHttpServer } from './http/server.js';
import { addAgentRoutes } from './http/routes/agents.routes.js';
import { addConfirmationRoutes } from './http/routes/confirmations.routes.js';
import { ConfirmationService } from './confirmations/confirmations.service.js';
import { addAuditRoutes } from './http/routes/audit.routes.js';
import { addIncidentRoutes } from './http/routes/incidents.routes.js';
import { addDecisionRoutes } from './http/routes/decisions.routes.js';
import { addApprovalRoutes } from './http/routes/approvals.routes.js';
import { ApprovalService } from './approvals/approvals.service.js';
import { addTrustRoutes } from './http/routes/trust.routes.js';
import { InboundEvents } from './webhooks/inbound-events.js';
import { TrustService } from './trust/trust.service.js';
import { ConsequenceService } from './trust/consequences.service.js';
import { PacketService } from './packets/packets.service.js';
import { addPacketRoutes, type PacketRenderers } from './http/routes/packets.routes.js';

async function loadPacketRenderers(): Promise<PacketRenderers> {
  const [{ renderPacketMarkdown }, { renderPacketPdf }] = await Promise.all([import('./packets/render-markdown.js'), import('./packets/render-pdf.js')]);
  return { markdown: renderPacketMarkdown, pdf: renderPacketPdf };
}
import { addOpsRoutes } from './http/routes/ops.routes.js';
import { addStreamRoutes } from './stream/stream.routes.js';
import { addMcpRoutes } from './mcp/mcp.routes.js';
import { startWorkers } from '../jobs/worker.js';
import type { NotifyDeps } from '../jobs/notify.job.js';
import { ChatCommands } from './chat/chat-commands.js';
import { createSlackAdapter, type SlackAdapter } from './slack/slack-app.js';
import { SlackDirectory, SLACK_DIRECTORY_JOB, SLACK_HOME_JOB } from './slack/slack-directory.js';
import { SlackNotifier } from './slack/slack-notifier.js';
import { createSlackWebClient } from './slack/slack-web.js';
import { createTeamsAdapter, lazyBotAdapter, teamsEnabled } from './teams/teams-app.js';
import { TeamsNotifier } from './teams/teams-notifier.js';

/** Raised when the process must not start (unmigrated database, bad policy): the message says why. */
export class StartupError extends Error {
  override name = 'StartupError';
}

export interface AppOptions {
  clock?: Clock;
  logger?: Logger;
  /** Permission view heartbeat (defaults to a third of the staleness bound). */
  heartbeatMs?: number;
  /** Worker lock/stall tuning, for tests that kill a worker mid-job. */
  worker?: { lockDurationMs?: number; stalledIntervalMs?: number };
  relayPollMs?: number;
  /** Change stream tuning, for tests (a small replay buffer, a faster heartbeat). */
  stream?: { replayBufferSize?: number; heartbeatMs?: number; resumeWindowMs?: number };
  /** Live policy tuning, for tests: the re-read debounce, and whether to watch the file at all. */
  policyReload?: { debounceMs?: number; watchFiles?: boolean };
}

export interface App {
  readonly config: Config;
  readonly db: Db;
  readonly redis: Redis;
  readonly queues: Queues;
  readonly metrics: Metrics;
  readonly policy: Policy;
  readonly agents: AgentService;
  readonly approvals: ApprovalService;
  readonly trust: TrustService;
  readonly commands: ChatCommands;
  readonly slack: SlackAdapter | undefined;
  readonly view: PermissionView | undefined;
  readonly relay: OutboxRelay | undefined;
  readonly workers: Worker[];
  readonly server: Server;
  readonly logger: Logger;
  /** sha256 of the policy in force (changes on a live reload; `/readyz` shows it). */
  policyHash(): string;
  /**
   * Re-reads the policy file now, as a file change or SIGHUP does: validated exactly as at start,
   * swapped in only if valid and different, then announced to the other replicas.
   */
  reloadPolicy(trigger?: 'SIGHUP' | 'manual'): Promise<ReloadOutcome>;
  /** The bound port (useful with PORT=0). */
  port(): number;
  stop(): Promise<void>;
}

/** Builds and starts the web and/or worker roles named by `config.role`. */
export async function startApp(config: Config, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const clock = options.clock ?? systemClock;
  const web = config.role !== 'worker';
  const worker = config.role !== 'web';
  // Said at every start, so nobody runs a public development setup without seeing it in the log.
  if (config.insecureDevDefaults) {
    logger.warn(
      { insecureDevDefaults: true, nodeEnv: config.nodeEnv },
      'INSECURE: ARMALO_INSECURE_DEV_DEFAULTS=1 accepts the public development token and short secrets even in production. For a laptop only: never expose this service, and unset it anywhere else',
    );
  }

  // Refuse to run on a policy that does not validate: nothing may run on a half-understood policy.
  // Every service gets this one object; a live reload swaps its contents (see PolicyHolder).
  const holder = new PolicyHolder(config.policyFile ? loadPolicyFile(config.policyFile) : parsePolicyData({}));
  const policy = holder.policy;
  if (!config.policyFile) logger.warn('ARMALO_POLICY_FILE is not set: running with an empty policy (no roles, no routing rules)');

  // Repeated errors while Postgres or Redis is away: a few lines a minute, not one per attempt.
  const limitedLog = createLimitedLog(logger);
  const db = createDb(config.databaseUrl, {
    onConnectionError: (err) => limitedLog('warn', 'postgres-connection', { err: err.message }, 'a Postgres connection was lost; the work on it failed and the pool reconnects'),
  });
  const cleanups: (() => Promise<unknown>)[] = [() => db.destroy()];
  // Each step gets a bounded time: a Redis that is gone must not keep the process from stopping.
  const stopAll = async () => {
    for (const fn of cleanups.reverse()) await withTimeout(fn(), 5000).catch(() => undefined);
  };
  try {
    const pending = await pendingMigrations(db).catch((err: Error) => {
      throw new StartupError(`cannot reach Postgres: ${err.message}`);
    });
    if (pending.length) {
      throw new StartupError(`the database is not migrated (pending: ${pending.join(', ')}); run \`npm run migrate\` first`);
    }

    const redis = createRedis(config.redisUrl);
    cleanups.push(() => closeRedis(redis));
    await withTimeout(redis.ping(), 5000).catch((err: Error) => {
      throw new StartupError(`cannot reach Redis: ${err.message}`);
    });
    // Producers fail fast while Redis is away (the outbox keeps the rows and retries) instead of
    // queueing commands in memory inside an open database transaction.
    // The permission-change publish after a commit goes on this connection too: with Redis away it
    // fails at once (bounded in publishPermissionChange) instead of holding the HTTP answer or the
    // Slack ack; the change is committed and other replicas catch up by their version poll.
    const producer = createRedis(config.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    cleanups.push(() => closeRedis(producer));
    if (producer.status !== 'ready') {
      // Not events.once: a transient 'error' while connecting must not fail the start.
      await withTimeout(new Promise<void>((resolve) => producer.once('ready', () => resolve())), 5000).catch((err: Error) => {
        throw new StartupError(`cannot reach Redis: ${err.message}`);
      });
    }
    const queues = createQueues(producer, config.queuePrefix, (queue, err) => {
      limitedLog('warn', `queue-error:${queue}`, { queue, err: err.message }, 'queue connection error');
    });
    cleanups.push(() => closeQueues(queues));
    const channel = `${config.queuePrefix}:permissions`;

    let view: PermissionView | undefined;
    if (web) {
      const subscriber = createRedis(config.redisUrl);
      cleanups.push(() => closeRedis(subscriber));
      view = new PermissionView({
        db,
        subscriber,
        publisher: producer,
        channel,
        clock,
        logger,
        staleAfterMs: config.viewStaleAfterMs,
        heartbeatMs: options.heartbeatMs,
      });
      await view.start();
      const started = view;
      cleanups.push(() => started.stop());
    }
    const publisher: PermissionChangePublisher = view ?? {
      publishChanged: (agentId, version) => publishPermissionChange(producer, channel, agentId, version),
    };

    let relay: OutboxRelay | undefined;
    // Approval request changes reach every replica's view (the decision path reads them from memory).
    const approvalsChanged = view ? (agentId: string) => view.publishApprovalsChanged(agentId) : (agentId: string) => publishApprovalsChange(producer, channel, agentId);
    const approvals = new ApprovalService({ db, clock, policy, callbackHosts: config.callbackHosts, onChanged: approvalsChanged });
    // Held webhook events (for agents unknown when they came) apply once their agent is registered.
    const agents = new AgentService({ db, clock, publisher, onOutboxWrite: () => relay?.wake(), approvals, onRegistered: (id) => inbound.applyHeld(id) });

    const trust = new TrustService({ db, clock, settings: () => policy.trust, publisher });
    const inbound = new InboundEvents({ db, clock, trust, logger });
    const packets = new PacketService({ db, clock, policy });
    const commands = new ChatCommands({ db, clock, agents, policy, approvals, trust, packets });
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

    let workers: Worker[] = [];
    if (worker) {
      relay = new OutboxRelay({ db, databaseUrl: config.databaseUrl, queues, clock, logger, pollMs: options.relayPollMs });
      await relay.start();
      const started = relay;
      cleanups.push(() => started.stop());
      const notify: NotifyDeps = {};
      if (config.slack.botToken) {
        const client = createSlackWebClient(config.slack.botToken, config.slack.apiUrl);
        notify.slack = { client, directory, notifier: new SlackNotifier({ db, client, policy, clock, approvals, packets, renderPdf: async (p) => (await loadPacketRenderers()).pdf(p), renderChart: async (p) => (await import('./packets/score-chart.js')).renderScoreChartPng(p.scoreHistory.points) }) };
        if (!policy.channels.incidents?.slack) logger.warn('the policy names no Slack incidents channel (channels.incidents.slack): incident notices are not posted');
      }
      if (teamsEnabled(config)) {
        notify.teams = { notifier: new TeamsNotifier({ db, clock, policy, adapter: lazyBotAdapter(config), appId: config.teams.appId ?? '', approvals, packets, ...(config.links ? { links: config.links } : {}) }) };
      }
      workers = await startWorkers({
        notify,
        connection: redis,
        prefix: config.queuePrefix,
        db,
        clock,
        logger,
        metrics,
        agents,
        approvals,
        consequences: new ConsequenceService({ db, clock, policy, agents, logger }),
        packets,
        trust,
        queues,
        inbound,
        webhook: config.eventsWebhook,
        lockDurationMs: options.worker?.lockDurationMs,
        stalledIntervalMs: options.worker?.stalledIntervalMs,
      });
      // Let running jobs finish for a few seconds; after that, stop anyway: an unfinished job is
      // taken over by another worker once its lock expires (jobs are idempotent).
      cleanups.push(() => Promise.all(workers.map((w) => withTimeout(w.close(), 4000).catch(() => w.close(true)))));
      if (!config.eventsWebhook) logger.info('ARMALO_EVENTS_WEBHOOK_URL is not set: events are recorded but not sent anywhere');
    }

    const router = new Router();
    // Readiness pings on the fail-fast producer: with Redis away each probe answers 503 at once.
    addOpsRoutes(router, { db, redis: producer, metrics, view, role: config.role, policyHash: () => holder.hash });
    const slack = web ? createSlackAdapter({
          config,
          commands,
          directory,
          logger,
          approvals,
          db,
          // Coalesced: one publish per person per 5 s however often the tab is opened.
          requestHome: async (userId) => {
            await queues.notify.add(SLACK_HOME_JOB, { userId }, { jobId: `home-${userId}-${Math.floor(Date.now() / 5000)}` });
          },
        }) : undefined;
    if (slack?.route) router.add(slack.route);
    const teams = web ? createTeamsAdapter({ config, db, clock, commands, logger, approvals }) : undefined;
    if (teams) router.add(teams.route);
    if (slack) {
      await slack.start();
      cleanups.push(() => slack.stop());
    }
    if (web && view) {
      const decisions = new DecisionService({ view, clock, metrics, rules: () => policy.routing, approvals, limitedLog });
      addDecisionRoutes(router, { view, decisions });
      const hub = addStreamRoutes(router, { view, db, clock, logger, routing: () => policy.routing, onStop: (stop) => cleanups.push(stop), ...options.stream });
      // Connected SDKs answer check() from the routing in their snapshot: send them the new rules.
      const unsubscribe = holder.onChange(({ previous, current }) => {
        if (JSON.stringify(previous.routing) !== JSON.stringify(current.routing)) hub.routingChanged();
      });
      cleanups.push(async () => unsubscribe());
      addMcpRoutes(router, { view, decisions, approvals, db, clock, logger, policy, publicUrl: config.publicUrl });
      addApprovalRoutes(router, { approvals, callbacksSigned: !!config.eventsWebhook, callbackHosts: config.callbackHosts, db });
      addTrustRoutes(router, { db, clock, trust, webhookSecret: config.inboundWebhookSecret, inbound });
      addPacketRoutes(router, { packets, renderers: loadPacketRenderers, clock, ...(config.links ? { links: config.links } : {}) });
      const confirmations = new ConfirmationService({ db, clock, policy, agents });
      addAgentRoutes(router, { db, clock, agents, confirmations });
      addConfirmationRoutes(router, { confirmations });
      addAuditRoutes(router, { db });
      addIncidentRoutes(router, { db, clock });
      if (config.apiTokens.length === 0) logger.warn('ARMALO_API_TOKENS is empty: every /v1 call will be refused');
    }
    const server = createHttpServer({ router, auth: new TokenAuthenticator(config.apiTokens), logger, metrics });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
    // Live policy: file watch, SIGHUP (main.ts) and other replicas' announcements (DESIGN §5).
    let watcher: PolicyWatcher | undefined;
    if (config.policyFile) {
      if (config.slack.botToken) {
        // New members listed by email become Slack users through the directory: resolve them now.
        const unsubscribe = holder.onChange(({ hash }) => {
          void queues.notify.add(SLACK_DIRECTORY_JOB, {}, { jobId: `slack-directory-policy-${hash.slice(0, 16)}` }).catch((err: Error) => logger.warn({ err: err.message }, 'could not queue a Slack directory refresh after the policy change'));
        });
        cleanups.push(async () => unsubscribe());
      }
      const subscriber = createRedis(config.redisUrl);
      cleanups.push(() => closeRedis(subscriber));
      watcher = new PolicyWatcher({
        file: config.policyFile,
        holder,
        db,
        clock,
        logger,
        publisher: producer,
        subscriber,
        channel: `${config.queuePrefix}:policy`,
        ...options.policyReload,
      });
      await watcher.start();
      const started = watcher;
      cleanups.push(async () => started.stop());
    }
    const port = (server.address() as AddressInfo).port;
    logger.info({ role: config.role, port }, 'armalo chat-ops started');

    return {
      config,
      db,
      redis,
      queues,
      metrics,
      policy,
      agents,
      approvals,
      trust,
      commands,
      slack,
      view,
      relay,
      workers,
      server,
      logger,
      policyHash: () => holder.hash,
      reloadPolicy: async (trigger = 'manual') => (watcher ? watcher.reload(trigger) : { outcome: 'no_file', hash: holder.hash }),
      port: () => port,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function closeRedis(redis: Redis): Promise<void> {
  await withTimeout(redis.quit(), 1000).catch(() => redis.disconnect());
}
