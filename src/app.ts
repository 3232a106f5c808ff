import type { Server } from 'node:http';
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from './config/env.js';
import type { Db } from './db/database.js';
import { systemClock, type Clock } from './core/clock.js';
import { createLimitedLog, createLogger, type Logger } from './observability/logger.js';
import type { Metrics } from './observability/metrics.js';
import type { Policy } from './policy/policy.schema.js';
import type { ReloadOutcome } from './policy/policy-watcher.js';
import type { Queues } from './queue/queues.js';
import type { AgentService } from './agents/agents.service.js';
import type { PermissionView } from './permissions/permission-view.js';
import type { OutboxRelay } from './outbox/outbox-relay.js';
import type { ApprovalService } from './approvals/approvals.service.js';
import type { TrustService } from './trust/trust.service.js';
import type { ChatCommands } from './chat/chat-commands.js';
import type { FleetService } from './fleet/fleet.service.js';
import type { SlackAdapter } from './slack/slack-app.js';
import { Lifecycle } from './composition/lifecycle.js';
import { createServices } from './composition/services.js';
import { startWorkerRole } from './composition/worker.js';
import { startHttp } from './composition/web.js';
import { loadPolicy, startLivePolicy } from './composition/live-policy.js';

export { StartupError } from './composition/lifecycle.js';

export interface AppOptions {
  clock?: Clock;
  logger?: Logger;
  /** Permission view heartbeat (defaults to a third of the staleness bound). */
  heartbeatMs?: number;
  /** Worker lock/stall tuning, for tests that kill a worker mid-job. */
  worker?: { lockDurationMs?: number; stalledIntervalMs?: number; scheduleWatchMs?: number };
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
  /** Fleet actions (`settled()` waits for the records of containments this process holds). */
  readonly fleet: FleetService;
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

/**
 * Builds and starts the web and/or worker roles named by `config.role`. The composition root:
 * services (src/composition/services.ts), the worker role (worker.ts), the HTTP server with the
 * chat adapters and the API (web.ts), live policy (live-policy.ts); lifecycle.ts undoes it at stop.
 */
export async function startApp(config: Config, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const clock = options.clock ?? systemClock;
  // Said at every start, so nobody runs a public development setup without seeing it in the log.
  if (config.insecureDevDefaults) {
    logger.warn(
      { insecureDevDefaults: true, nodeEnv: config.nodeEnv },
      'INSECURE: ARMALO_INSECURE_DEV_DEFAULTS=1 accepts the public development token and short secrets even in production. For a laptop only: never expose this service, and unset it anywhere else',
    );
  }
  // Every service gets this one policy object; a live reload swaps its contents (see PolicyHolder).
  const holder = loadPolicy(config, logger);
  const lifecycle = new Lifecycle();
  try {
    const s = await createServices({ config, options, clock, logger, limitedLog: createLimitedLog(logger), holder }, lifecycle);
    const workers = config.role !== 'web' ? await startWorkerRole(s, options, lifecycle) : [];
    const { port, slack, server } = await startHttp(s, options, lifecycle);
    const watcher = await startLivePolicy(s, options, lifecycle);
    logger.info({ role: config.role, port }, 'armalo chat-ops started');
    return {
      ...pick(s, ['config', 'db', 'redis', 'queues', 'metrics', 'policy', 'agents', 'approvals', 'trust', 'commands', 'fleet', 'view', 'relay', 'logger']),
      slack,
      workers,
      server,
      policyHash: () => holder.hash,
      reloadPolicy: async (trigger = 'manual') => (watcher ? watcher.reload(trigger) : { outcome: 'no_file', hash: holder.hash }),
      port: () => port,
      stop: () => lifecycle.stop(),
    };
  } catch (err) {
    await lifecycle.stop();
    throw err;
  }
}

function pick<T extends object, K extends keyof T>(from: T, keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, from[k]])) as Pick<T, K>;
}
