import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import type { ActiveAction, Agent, OpenApproval } from '../domain/agent.js';
import { createLimitedLog, type LimitedLog, type Logger } from '../observability/logger.js';
import { loadAgentsAboveWithHolds, loadAllAgents } from '../agents/agents.repository.js';
import type { PermissionChangePublisher } from '../agents/agents.service.js';
import { approvalsWrittenSince, loadOpenApprovals } from '../approvals/open-approvals.repository.js';
import { loadHolds, type FleetHold } from '../fleet/fleet.repository.js';
import { asHeld, holdAction } from '../fleet/fleet-hold.js';

export interface PermissionViewOptions {
  db: Db;
  /** A connection used only for SUBSCRIBE (Redis forbids other commands on it). */
  subscriber: Redis;
  /** A connection for PUBLISH. */
  publisher: Redis;
  channel: string;
  clock: Clock;
  logger: Logger;
  /** Fail closed when the push channel or the database poll has not been confirmed for this long. */
  staleAfterMs: number;
  /** How often we ping ourselves through the channel and poll Postgres for missed changes. */
  heartbeatMs?: number;
}

/** How long a publish may take before we stop waiting: the change is committed, the poll catches up. */
export const PUBLISH_WAIT_MS = 1000;

/**
 * Tells every replica that an agent's permissions changed (used directly by worker-only processes).
 * Bounded: with Redis unreachable (or reachable but silent) the caller gets an error within
 * `PUBLISH_WAIT_MS` instead of waiting for ever. Other replicas then learn of the change by their
 * version poll, within the staleness bound.
 */
export async function publishPermissionChange(publisher: Redis, channel: string, agentId: string, version: bigint, from?: string): Promise<void> {
  const msg: Message = { t: 'changed', agentId, version: version.toString(), ...(from ? { from } : {}) };
  await withDeadline(publisher.publish(channel, JSON.stringify(msg)), PUBLISH_WAIT_MS, 'publishing a permission change');
}

/**
 * Tells every replica that an agent's approval requests changed (created, decided, ended, used), so
 * their views reload that agent's open approvals. Bounded like `publishPermissionChange`; a lost
 * message is caught by the poll, which reloads every open approval.
 */
export async function publishApprovalsChange(publisher: Redis, channel: string, agentId: string, from?: string): Promise<void> {
  const msg: Message = { t: 'approvals', agentId, ...(from ? { from } : {}) };
  await withDeadline(publisher.publish(channel, JSON.stringify(msg)), PUBLISH_WAIT_MS, 'publishing an approval change');
}

/** How long one read of permission state may take before the view stops waiting for it. */
const RELOAD_WAIT_MS = 10_000;

/** A catch-up of more versions than this reads like the first load (`loadAllAgents`), not agent by agent. */
export const BULK_CATCH_UP_VERSIONS = 500n;

/** The agents above a version, streamed from one snapshot (see `loadAllAgents`). */
async function loadAgentsStreamed(db: Db, versionAbove: bigint): Promise<Agent[]> {
  const agents: Agent[] = [];
  await loadAllAgents(db, (page) => {
    for (const a of page) agents.push(a);
  }, { versionAbove });
  return agents;
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * What travels on the channel. Anyone who can reach Redis can publish there, so every message is
 * checked before use: a bad one is ignored (and logged, rate-limited), never allowed to throw.
 */
const messageSchema = z.discriminatedUnion('t', [
  // `from`: the replica that sent it, which reads the change itself.
  z.object({ t: z.literal('changed'), agentId: z.string().min(1).max(256), version: z.string().regex(/^\d{1,19}$/), from: z.string().min(1).max(100).optional() }),
  z.object({ t: z.literal('ping'), from: z.string().min(1).max(100) }),
  // `from`: the replica that sent it has applied the change already.
  z.object({ t: z.literal('approvals'), agentId: z.string().min(1).max(256), from: z.string().min(1).max(100).optional() }),
]);
type Message = z.infer<typeof messageSchema>;

/** One agent whose open approval requests changed: its list before and after (either may be empty). */
export interface ApprovalsChange {
  agentId: string;
  before: readonly OpenApproval[];
  after: readonly OpenApproval[];
}

/**
 * Told of every change the view stores (the change stream fans them out). Called synchronously
 * while the view applies a read, so the view's state already holds the change; a listener that
 * throws is logged and ignored, never allowed to break the view.
 */
export interface PermissionViewListener {
  /** Agents stored at a newer version than the view held, in version order. */
  agentsChanged?(agents: readonly Agent[]): void;
  /** Agents whose open approvals differ from what the view held (one read's worth at a time). */
  approvalsChanged?(changes: readonly ApprovalsChange[]): void;
}

/**
 * Each process's in-memory copy of permission state, which the decision path reads.
 *
 * Freshness contract (the staleness bound):
 * - A committed change is published on a Redis channel; every replica reloads that agent at once.
 * - Every `heartbeatMs` each replica pings itself through the same channel and asks Postgres for
 *   any agent whose version is above the highest it holds (catching a publish that was lost).
 * - A replica that has not heard its own ping, or not completed a poll, for `staleAfterMs`
 *   reports itself stale and the decision path denies everything until a poll that started after
 *   the channel came back has completed.
 * So a decision never uses state older than `staleAfterMs` plus one poll round trip.
 *
 * Everything a decision reads lives here, so the decision path asks Postgres nothing: grants and
 * actions in force, each agent's trust score, tier and newest-evidence time (loaded with the agent;
 * a new evaluation or score bumps the agent's version), and each agent's open approval requests
 * (pending, or approved and not used up). Approvals carry no version: a change publishes an
 * `approvals` message for the agent, an agent reload takes its approvals along, and every poll
 * reloads the open approvals of the agents whose requests were written since the poll before (by
 * transaction id, see `approvalsWrittenSince`: a lost publish is found without reading every open
 * request each time). A stale approval is harmless: using a single-use one is a conditional
 * UPDATE in Postgres that only one replica wins, and containment reloads the agent with it.
 */
export class PermissionView implements PermissionChangePublisher {
  private readonly agents = new Map<string, Agent>();
  /**
   * Fleet containments committed as a hold whose per-agent records are not written yet (see
   * `FleetService.holdAndRecord`), by fleet incident; and each held agent's contain as the hold
   * gives it. A held agent reads as contained (`get`) until its own contain is stored.
   */
  private readonly holds = new Map<string, FleetHold>();
  private readonly heldAgents = new Map<string, HeldBy>();
  /** Holds this view saw released: a read that started before a release must not bring it back. */
  private readonly releasedHolds = new Set<string>();
  private readonly overlays = new WeakMap<Agent, { by: HeldBy; agent: Agent }>();
  private readonly approvals = new Map<string, OpenApproval[]>();
  /**
   * Reads of approvals are numbered when they start; a read only replaces what an earlier-started
   * read wrote (a late answer after a deadline must not bring back a request that has ended).
   */
  private approvalReads = 0;
  private readonly approvalsReadAt = new Map<string, number>();
  private allApprovalsReadAt = 0;
  /** Where the next poll asks for approval writes from (a transaction id, see `approvalsWrittenSince`); unset until a full read. */
  private approvalsHorizon: string | undefined;
  private readonly id = randomUUID();
  private readonly heartbeatMs: number;
  /**
   * The view's version: it holds every committed change up to here. Only reads of "every agent above
   * it" advance it (see `catchUp`).
   */
  private maxVersion = 0n;
  /** Decisions waiting for `atLeastVersion` (settled by `apply`, or by their timeout). */
  private readonly versionWaiters = new Set<VersionWaiter>();
  private loaded = false;
  private lastPushAt = 0;
  private pushLostAt: number | null = null;
  private lastPollOkAt = 0;
  /** After a loss, only a poll that started at or after this time can make the view fresh again. */
  private pollNeededAfter = 0;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private stopped = false;
  /** Serializes reloads so an older read never overwrites a newer one. */
  private reloadChain: Promise<unknown> = Promise.resolve();
  /** The catch-up waiting in the reload chain, not started yet (later changes join it). */
  private bulkReads = 0;
  private queuedCatchUp: { ids: Set<string>; announced: bigint; done: Promise<void> } | undefined;
  /** The approvals reload waiting in the reload chain, not started yet (later changes join it). */
  private queuedApprovals: { ids: Set<string>; done: Promise<void> } | undefined;
  private readonly limitedLog: LimitedLog;
  private pollFailing = false;
  private readonly listeners = new Set<PermissionViewListener>();

  constructor(private readonly opts: PermissionViewOptions) {
    this.heartbeatMs = opts.heartbeatMs ?? Math.max(200, Math.floor(opts.staleAfterMs / 3));
    this.limitedLog = createLimitedLog(opts.logger);
  }

  async start(): Promise<void> {
    const { subscriber, channel, logger } = this.opts;
    subscriber.on('message', (ch: string, raw: string) => {
      if (ch === channel) this.onMessage(raw);
    });
    subscriber.on('close', () => {
      if (this.pushLostAt === null && !this.stopped) {
        this.pushLostAt = Date.now();
        logger.warn({ channel }, 'permission push channel lost; this replica fails closed if it is not back soon');
      }
    });
    // ioredis re-subscribes on reconnect; 'ready' after a loss means the channel is back.
    subscriber.on('ready', () => {
      if (this.pushLostAt !== null) logger.info({ channel }, 'permission push channel back; resynchronising');
    });
    await subscriber.subscribe(channel);
    const loadStart = Date.now();
    await this.poll(true);
    // A large first load can take longer than the staleness bound, and changes committed during it
    // are not in its snapshot: one ordinary poll right after reads them and makes the view fresh.
    await this.poll(false);
    logger.info({ agents: this.agents.size, ms: Date.now() - loadStart, version: this.maxVersion.toString() }, 'permission view loaded');
    this.loaded = true;
    this.lastPushAt = Date.now();
    this.timer = setInterval(() => this.tick(), this.heartbeatMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const waiter of [...this.versionWaiters]) waiter.settle(false);
    await this.polling?.catch(() => undefined);
    await this.reloadChain.catch(() => undefined);
  }

  /** True while this replica can vouch for its view; the decision path denies otherwise. */
  isFresh(now = Date.now()): boolean {
    if (!this.loaded || this.pushLostAt !== null || this.lastPollOkAt < this.pollNeededAfter) return false;
    const bound = this.opts.staleAfterMs;
    return now - this.lastPushAt <= bound && now - this.lastPollOkAt <= bound;
  }

  get(agentId: string): Agent | undefined {
    const agent = this.agents.get(agentId);
    if (this.heldAgents.size === 0 || agent === undefined) return agent;
    const by = this.heldAgents.get(agentId);
    return by ? this.held(agent, by) : agent;
  }

  /** A held agent as its contain will leave it (`asHeld`; the hold's version makes stream clients take it as newer). */
  private held(agent: Agent, by: HeldBy): Agent {
    const kept = this.overlays.get(agent);
    if (kept && kept.by === by) return kept.agent;
    const overlaid = asHeld(agent, by.action, by.version);
    this.overlays.set(agent, { by, agent: overlaid });
    return overlaid;
  }

  /** How many agents fleet holds keep contained until their records are written (metrics, tests). */
  get heldCount(): number {
    return this.heldAgents.size;
  }

  /** The agent's open approval requests (pending, or approved and not used up), as last loaded. */
  approvalsFor(agentId: string): readonly OpenApproval[] {
    return this.approvals.get(agentId) ?? NO_APPROVALS;
  }

  /** Every agent the view holds (the change stream's snapshot). */
  *allAgents(): IterableIterator<Agent> {
    if (this.heldAgents.size === 0) {
      yield* this.agents.values();
      return;
    }
    for (const agent of this.agents.values()) {
      const by = this.heldAgents.get(agent.id);
      yield by ? this.held(agent, by) : agent;
    }
  }

  /** Every open approval request the view holds, grouped by agent. */
  *allApprovals(): IterableIterator<OpenApproval> {
    for (const list of this.approvals.values()) yield* list;
  }

  /** Registers a listener for stored changes; the returned function removes it. */
  onChange(listener: PermissionViewListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A single-use approval was consumed here: drop it at once, and tell the other replicas. */
  async approvalUsed(agentId: string, requestId: string): Promise<void> {
    const list = this.approvals.get(agentId);
    if (list) {
      const after = list.filter((a) => a.id !== requestId);
      this.approvals.set(agentId, after);
      if (after.length !== list.length) this.notifyApprovals([{ agentId, before: list, after }]);
    }
    await publishApprovalsChange(this.opts.publisher, this.opts.channel, agentId, this.id);
  }

  /** An approval request changed: reload the agent's open approvals here, then tell the other replicas. */
  async publishApprovalsChanged(agentId: string): Promise<void> {
    await this.reloadApprovals([agentId]);
    await publishApprovalsChange(this.opts.publisher, this.opts.channel, agentId, this.id);
  }

  get size(): number {
    return this.agents.size;
  }

  /** How many catch-ups read a large change like the first load (see `BULK_CATCH_UP_VERSIONS`). */
  get bulkCatchUps(): number {
    return this.bulkReads;
  }

  get version(): bigint {
    return this.maxVersion;
  }

  /** The staleness bound: while fresh, the view holds every change committed longer ago than this. */
  get staleAfterMs(): number {
    return this.opts.staleAfterMs;
  }

  /**
   * Resolves true once this view holds every change up to `version` (at once if it already does),
   * false after `waitMs`. Event-driven, no polling of its own: waiters are settled when a read
   * advances the view (the catch-up a push triggers, or the heartbeat poll).
   */
  waitForVersion(version: bigint, waitMs: number): Promise<boolean> {
    if (this.maxVersion >= version) return Promise.resolve(true);
    if (this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: VersionWaiter = {
        version,
        settle: (reached) => {
          clearTimeout(timer);
          this.versionWaiters.delete(waiter);
          resolve(reached);
        },
      };
      const timer = setTimeout(() => waiter.settle(false), waitMs);
      this.versionWaiters.add(waiter);
    });
  }

  async publishChanged(agentId: string, version: bigint): Promise<void> {
    // Tell the other replicas and apply it here at the same time: the publish does not wait for our
    // own read, and the caller's next decision here must already see its own change (we wait for
    // both). A failed publish is reported after the local read, which happens either way.
    const published = publishPermissionChange(this.opts.publisher, this.opts.channel, agentId, version, this.id);
    published.catch(() => undefined);
    await this.catchUp([agentId], version);
    await published;
  }

  /**
   * After this process committed `agents`, each at the version its commit drew, and that commit
   * drew no other version (a registration batch: one version per agent written): tells the other
   * replicas (one message, the highest version) and stores them here without reading them back.
   *
   * Storing them may advance the view's version only when the versions are contiguous with it
   * (the view holds everything up to M, and the batch drew exactly M+1…M+n): versions are drawn
   * under the audit head lock in commit order, so no other committed change can lie in that range,
   * and the view then holds every change up to M+n. Otherwise (another writer's change, or a gap a
   * rolled-back transaction left, lies in between) the usual catch-up reads everything above the
   * view's version. Only the approvals of `approvalsOf` are read again (a registration changes
   * none; a fleet contain cancels the pending ones of its agents).
   *
   * An agent whose trust fields are undefined (a fleet action reads grants and actions, not trust)
   * takes them from the view's entry: stored only when contiguous, that entry holds every change up
   * to the write's first version, and the write changed no trust data.
   */
  async publishWritten(agents: readonly Agent[], options: { approvalsOf?: readonly string[]; released?: readonly string[] } = {}): Promise<void> {
    if (agents.length === 0) return;
    const sorted = agents.map((a) => this.withKnownTrust(a)).sort((x, y) => (x.version < y.version ? -1 : x.version > y.version ? 1 : 0));
    const last = sorted[sorted.length - 1]!;
    const published = publishPermissionChange(this.opts.publisher, this.opts.channel, last.id, last.version, this.id);
    published.catch(() => undefined);
    const base = this.maxVersion;
    const contiguous = this.loaded && sorted.every((a, i) => a.version === base + BigInt(i) + 1n);
    // A fleet hold the commit released goes with the agents' own contains, in the same turn.
    const release = () => {
      if (options.released?.length) this.releaseHolds(options.released);
    };
    if (contiguous) {
      this.apply(sorted, last.version);
      release();
    } else if (this.maxVersion >= last.version) {
      // A read that saw a version at or above ours started after our commit: it stored our agents
      // (or newer). Storing ours again changes nothing but keeps the caller's answer and the view in step.
      this.apply(sorted, this.maxVersion);
      release();
    } else await this.catchUp(sorted.map((a) => a.id));
    if (options.approvalsOf?.length) await this.reloadApprovals([...options.approvalsOf]);
    await published;
  }

  private withKnownTrust(agent: Agent): Agent {
    if (agent.trustTier !== undefined && agent.trustScore !== undefined && agent.newestEvidenceAt !== undefined) return agent;
    const known = this.agents.get(agent.id);
    return {
      ...agent,
      trustTier: agent.trustTier !== undefined ? agent.trustTier : (known?.trustTier ?? null),
      trustScore: agent.trustScore !== undefined ? agent.trustScore : (known?.trustScore ?? null),
      newestEvidenceAt: agent.newestEvidenceAt !== undefined ? agent.newestEvidenceAt : (known?.newestEvidenceAt ?? null),
    };
  }

  private onMessage(raw: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = undefined;
    }
    const checked = messageSchema.safeParse(parsed);
    if (!checked.success) {
      // Never the raw text: it is whatever someone published, and could be huge.
      this.limitedLog('warn', 'bad-permission-message', { channel: this.opts.channel, length: raw.length }, 'ignored a malformed message on the permission channel');
      return;
    }
    const msg = checked.data;
    if (msg.t === 'ping') {
      if (msg.from !== this.id) return;
      const now = Date.now();
      if (this.pushLostAt !== null) {
        // The channel is back, but changes may have been missed while it was gone: only a poll
        // that starts now can make the view trustworthy again.
        this.pushLostAt = null;
        this.lastPushAt = now;
        this.pollNeededAfter = now;
        void this.startPoll().then(() => this.startPoll());
        return;
      }
      this.lastPushAt = now;
      return;
    }
    if (msg.t === 'approvals') {
      if (msg.from === this.id) return;
      void this.reloadApprovals([msg.agentId]).catch((err: unknown) =>
        this.limitedLog('error', 'reload-approvals', { err: (err as Error).message, agentId: msg.agentId }, 'reloading approvals after a change failed; the poll will retry'),
      );
      return;
    }
    // Our own change is read by `publishChanged`; at or below the view's version, the change is
    // already here (versions follow commit order).
    if (msg.from === this.id || BigInt(msg.version) <= this.maxVersion) return;
    void this.catchUp([msg.agentId], BigInt(msg.version)).catch((err: unknown) =>
      this.limitedLog('error', 'reload-after-change', { err: (err as Error).message, agentId: msg.agentId }, 'reloading agent after a change failed; the poll will retry'),
    );
  }

  private tick(): void {
    if (this.stopped) return;
    const ping: Message = { t: 'ping', from: this.id };
    this.opts.publisher.publish(this.opts.channel, JSON.stringify(ping)).catch(() => undefined);
    // A subscriber that never saw 'close' may still have stopped delivering: treat silence as loss.
    if (this.pushLostAt === null && Date.now() - this.lastPushAt > this.opts.staleAfterMs) {
      this.pushLostAt = Date.now();
      this.opts.logger.warn({ channel: this.opts.channel }, 'no heartbeat on the permission channel; failing closed');
    }
    void this.startPoll();
  }

  private startPoll(): Promise<void> {
    if (!this.polling) {
      this.polling = this.poll(false).finally(() => {
        this.polling = undefined;
      });
    }
    return this.polling;
  }

  private async poll(initial: boolean): Promise<void> {
    const startedAt = Date.now();
    try {
      await this.enqueueReload(async () => {
        const seq = ++this.approvalReads;
        // The first load streams every agent from one snapshot (COPY, see loadAllAgents), with the
        // holds read around it (see `applyHolds`); later polls read only what changed, holds in
        // the same statement.
        if (initial) {
          const [, approvals] = await Promise.all([
            this.withHoldsAround(() => loadAllAgents(this.opts.db, (page) => this.apply(page))),
            this.loadAllApprovals(),
          ]);
          this.applyAllApprovals(approvals.rows, seq);
          this.approvalsHorizon = approvals.horizon;
          return;
        }
        // Approvals: only the agents whose requests were written since the last poll's horizon (a
        // poll used to read every open request, which grew with the number pending). Until a
        // full read has set a horizon (the first load failed halfway), the poll reads them all.
        const horizon = this.approvalsHorizon;
        const [changed, approvals] = await Promise.all([
          loadAgentsAboveWithHolds(this.opts.db, this.maxVersion, [...this.holds.keys()]),
          horizon === undefined ? this.loadAllApprovals() : this.loadApprovalsWrittenSince(horizon),
        ]);
        this.applyHolds(changed.holds);
        this.apply(changed.agents);
        if (approvals.agentIds) this.applyApprovals(approvals.agentIds, approvals.rows, seq);
        else this.applyAllApprovals(approvals.rows, seq);
        this.approvalsHorizon = approvals.horizon;
        this.dropLapsedApprovals();
      }, initial ? undefined : RELOAD_WAIT_MS);
      this.lastPollOkAt = startedAt;
      if (this.pollFailing) {
        this.pollFailing = false;
        this.limitedLog.reset('poll-failed');
        this.opts.logger.info('permission poll succeeds again');
      }
    } catch (err) {
      if (initial) throw err;
      this.pollFailing = true;
      this.limitedLog('warn', 'poll-failed', { err: (err as Error).message }, 'permission poll failed; this replica fails closed until one succeeds');
    }
  }

  /** Every open approval request, and the horizon taken before the read (writes it missed are at or above it). */
  private async loadAllApprovals(): Promise<{ rows: OpenApproval[]; agentIds?: undefined; horizon: string }> {
    const { horizon } = await approvalsWrittenSince(this.opts.db, undefined);
    return { rows: await loadOpenApprovals(this.opts.db, this.opts.clock.now()), horizon };
  }

  /** The open requests of the agents whose requests were written at or above `since`, and the next horizon. */
  private async loadApprovalsWrittenSince(since: string): Promise<{ rows: OpenApproval[]; agentIds: string[]; horizon: string }> {
    const written = await approvalsWrittenSince(this.opts.db, since);
    const rows = written.agentIds.length ? await loadOpenApprovals(this.opts.db, this.opts.clock.now(), written.agentIds) : [];
    return { rows, agentIds: written.agentIds, horizon: written.horizon };
  }

  /**
   * Approvals whose grant window has passed are no longer open, though nothing wrote their rows:
   * dropped here on each poll (a decision checks the window itself; this keeps the view, and what
   * the change stream shows, from holding them).
   */
  private dropLapsedApprovals(): void {
    const now = this.opts.clock.now().getTime();
    const changes: ApprovalsChange[] = [];
    for (const [agentId, list] of this.approvals) {
      if (!list.some((a) => a.grantUntil !== null && a.grantUntil.getTime() <= now)) continue;
      const open = list.filter((a) => a.grantUntil === null || a.grantUntil.getTime() > now);
      this.storeApprovals(agentId, open.length ? open : undefined, changes);
    }
    this.notifyApprovals(changes);
  }

  /**
   * After a change to `ids` was announced: reads every agent above the view's version (the changed
   * ones, and any whose publish was lost), not just `ids`. Only such reads may advance the view's
   * version: versions are drawn in commit order, so a read that sees version M sees every change up
   * to M, while a reload of one agent at M says nothing about the others below M.
   */
  private catchUp(ids: string[], announced?: bigint): Promise<void> {
    // Joins a catch-up that is queued and has not started yet: its read starts after our change
    // committed, so it sees it. Under a burst of writes this is one read for many changes instead
    // of one read per change, each behind the last.
    const queued = this.queuedCatchUp;
    if (queued) {
      for (const id of ids) queued.ids.add(id);
      if (announced !== undefined && announced > queued.announced) queued.announced = announced;
      return queued.done;
    }
    const pending = { ids: new Set(ids), announced: announced ?? 0n, done: Promise.resolve() };
    this.queuedCatchUp = pending;
    pending.done = this.enqueueReload(async () => {
      if (this.queuedCatchUp === pending) this.queuedCatchUp = undefined;
      const agentIds = [...pending.ids];
      const seq = ++this.approvalReads;
      const above = this.maxVersion;
      // Thousands of versions to catch up (a fleet action): streamed like the first load, from one
      // snapshot, rather than read as JSON built per agent (the same agents, many times cheaper).
      const bulk = pending.announced - above > BULK_CATCH_UP_VERSIONS;
      if (bulk) this.bulkReads++;
      const approvals = loadOpenApprovals(this.opts.db, this.opts.clock.now(), agentIds);
      approvals.catch(() => undefined);
      if (bulk) {
        this.apply(await this.withHoldsAround(() => loadAgentsStreamed(this.opts.db, above)));
      } else {
        // One statement, one round trip: the agents above the version and the holds.
        const changed = await loadAgentsAboveWithHolds(this.opts.db, above, [...this.holds.keys()]);
        this.applyHolds(changed.holds);
        this.apply(changed.agents);
      }
      this.applyApprovals(agentIds, await approvals, seq);
    }, RELOAD_WAIT_MS);
    return pending.done;
  }

  /**
   * Reads these agents' open approvals again. Joins a reload that is queued and has not started
   * yet (its read starts after the caller's change committed, so it sees it): a burst of requests
   * for one agent is one read per round trip, not one read of the agent's whole list per request,
   * each behind the last.
   */
  private reloadApprovals(ids: string[]): Promise<void> {
    const queued = this.queuedApprovals;
    if (queued) {
      for (const id of ids) queued.ids.add(id);
      return queued.done;
    }
    const pending = { ids: new Set(ids), done: Promise.resolve() };
    this.queuedApprovals = pending;
    pending.done = this.enqueueReload(async () => {
      if (this.queuedApprovals === pending) this.queuedApprovals = undefined;
      const agentIds = [...pending.ids];
      const seq = ++this.approvalReads;
      this.applyApprovals(agentIds, await loadOpenApprovals(this.opts.db, this.opts.clock.now(), agentIds), seq);
    }, RELOAD_WAIT_MS);
    return pending.done;
  }

  private applyApprovals(agentIds: readonly string[], rows: OpenApproval[], seq: number): void {
    const byAgent = groupByAgent(rows);
    const changes: ApprovalsChange[] = [];
    for (const id of agentIds) {
      if ((this.approvalsReadAt.get(id) ?? 0) > seq || this.allApprovalsReadAt > seq) continue;
      this.approvalsReadAt.set(id, seq);
      this.storeApprovals(id, byAgent.get(id), changes);
    }
    this.notifyApprovals(changes);
  }

  private applyAllApprovals(rows: OpenApproval[], seq: number): void {
    if (this.allApprovalsReadAt > seq) return;
    this.allApprovalsReadAt = seq;
    const byAgent = groupByAgent(rows);
    const changes: ApprovalsChange[] = [];
    for (const id of new Set([...this.approvals.keys(), ...byAgent.keys()])) {
      if ((this.approvalsReadAt.get(id) ?? 0) > seq) continue;
      this.approvalsReadAt.delete(id);
      this.storeApprovals(id, byAgent.get(id), changes);
    }
    this.notifyApprovals(changes);
  }

  /** Replaces one agent's open approvals, noting the change when listeners would see a difference. */
  private storeApprovals(agentId: string, list: OpenApproval[] | undefined, changes: ApprovalsChange[]): void {
    const before = this.approvals.get(agentId) ?? NO_APPROVALS;
    if (list) this.approvals.set(agentId, list);
    else this.approvals.delete(agentId);
    const after = list ?? NO_APPROVALS;
    if (this.listeners.size > 0 && !sameApprovals(before, after)) changes.push({ agentId, before, after });
  }

  private notifyApprovals(changes: readonly ApprovalsChange[]): void {
    if (changes.length === 0) return;
    for (const listener of this.listeners) this.callListener(() => listener.approvalsChanged?.(changes));
  }

  private callListener(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.limitedLog('error', 'view-listener', { err: (err as Error).message }, 'a permission view listener failed; the view carries on');
    }
  }

  /**
   * A read on a connection that went silent (no error, no answer) must not hold the chain for ever:
   * after `waitMs` the chain moves on and the caller gets an error (a poll then counts as failed).
   * A late answer is still applied, which is safe because `apply` never lowers a version.
   */
  private enqueueReload(work: () => Promise<void>, waitMs?: number): Promise<void> {
    const bounded = waitMs === undefined ? work : () => withDeadline(work(), waitMs, 'reading permission state from Postgres');
    const next = this.reloadChain.then(bounded, bounded);
    this.reloadChain = next.catch(() => undefined);
    return next;
  }

  /**
   * A streamed read of agents (COPY), which cannot share a statement with the holds: the holds are
   * read before and after it and stored when it has ended (see `applyHolds`).
   */
  private async withHoldsAround<T>(read: () => Promise<T>): Promise<T> {
    const before = await loadHolds(this.opts.db, [...this.holds.keys()]);
    const result = await read();
    this.applyHolds(before, await loadHolds(this.opts.db, []));
    return result;
  }

  /**
   * Stores the holds read with one read of agents, before those agents are stored. Read in the
   * agents' own statement (`loadAgentsAboveWithHolds`, one snapshot), `before` is the whole truth
   * and there is no `after`. Otherwise (the streamed reads) they are read around the agents' read,
   * in statements of their own, so each side is trusted only for what its order proves:
   * - `before` (read first, with the holds this view knows): its releases are safe to apply, since
   *   a release commits with the agents' own contains, which the later agents' read sees; its
   *   versions count toward the view's (everything below them committed before the agents' read).
   * - `after` (read last, holds in force only): adds a hold that committed while the agents were
   *   read. Without it, agents written after that hold would carry the view past its version while
   *   the view did not hold it. Its releases and versions are left to the next read.
   */
  private applyHolds(before: readonly FleetHold[], after: readonly FleetHold[] = before): void {
    if (before.length === 0 && after.length === 0 && this.holds.size === 0) return;
    const inForce = new Map<string, FleetHold>();
    for (const hold of before) {
      const top = hold.releasedVersion ?? hold.version;
      if (top > this.maxVersion) this.maxVersion = top;
      if (hold.releasedVersion !== null) this.releasedHolds.add(hold.id);
      else if (hold.agentIds && !this.releasedHolds.has(hold.id)) inForce.set(hold.id, hold);
    }
    for (const hold of after) if (hold.agentIds && !inForce.has(hold.id) && !this.releasedHolds.has(hold.id)) inForce.set(hold.id, hold);
    const added = [...inForce.keys()].filter((id) => !this.holds.has(id));
    this.holds.clear();
    for (const [id, hold] of inForce) this.holds.set(id, hold);
    this.indexHolds(added);
  }

  /** Forgets holds whose release this process committed (with the agents it just stored). */
  private releaseHolds(ids: readonly string[]): void {
    let changed = false;
    for (const id of ids) {
      this.releasedHolds.add(id);
      changed = this.holds.delete(id) || changed;
    }
    if (changed) this.indexHolds([]);
  }

  /** Rebuilds the held agents from the holds; tells listeners of agents newly held (`added` holds). */
  private indexHolds(added: readonly string[]): void {
    this.heldAgents.clear();
    for (const hold of [...this.holds.values()].sort((x, y) => (x.version < y.version ? -1 : x.version > y.version ? 1 : 0))) {
      const by: HeldBy = { version: hold.version, action: holdAction(hold) };
      for (const id of hold.agentIds ?? []) if (!this.heldAgents.has(id)) this.heldAgents.set(id, by);
    }
    if (added.length === 0 || this.listeners.size === 0) return;
    const newlyHeld: Agent[] = [];
    for (const holdId of added) {
      for (const id of this.holds.get(holdId)?.agentIds ?? []) {
        const agent = this.agents.get(id);
        const by = this.heldAgents.get(id);
        if (agent && by) {
          const shown = this.held(agent, by);
          if (shown !== agent) newlyHeld.push(shown);
        }
      }
    }
    newlyHeld.sort((x, y) => (x.version < y.version ? -1 : x.version > y.version ? 1 : 0));
    if (newlyHeld.length > 0) for (const listener of this.listeners) this.callListener(() => listener.agentsChanged?.(newlyHeld));
  }

  /**
   * Stores agents (never an older version over a newer one). A read of every agent above the
   * view's version advances the view to the highest it saw; `holdsUpTo`, when given, is the
   * version the caller has shown the view now holds everything up to (see `publishWritten`).
   */
  private apply(agents: readonly Agent[], holdsUpTo?: bigint): void {
    const newer: Agent[] = [];
    for (const agent of agents) {
      const known = this.agents.get(agent.id);
      if (!known || agent.version >= known.version) this.agents.set(agent.id, agent);
      if (!known || agent.version > known.version) newer.push(agent);
      if (holdsUpTo === undefined && agent.version > this.maxVersion) this.maxVersion = agent.version;
    }
    if (holdsUpTo !== undefined && holdsUpTo > this.maxVersion) this.maxVersion = holdsUpTo;
    if (newer.length > 0 && this.listeners.size > 0) {
      newer.sort((x, y) => (x.version < y.version ? -1 : x.version > y.version ? 1 : 0));
      for (const listener of this.listeners) this.callListener(() => listener.agentsChanged?.(newer));
    }
    for (const waiter of [...this.versionWaiters]) if (waiter.version <= this.maxVersion) waiter.settle(true);
  }
}

/** The contain a fleet hold gives its agents, and the hold's version. */
interface HeldBy {
  version: bigint;
  action: ActiveAction;
}

interface VersionWaiter {
  version: bigint;
  settle(reached: boolean): void;
}

const NO_APPROVALS: readonly OpenApproval[] = Object.freeze([]);

/** Same requests with the same status and dates (a poll re-reads every list; most are unchanged). */
function sameApprovals(a: readonly OpenApproval[], b: readonly OpenApproval[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b.find((r) => r.id === x.id);
    if (!y || x.status !== y.status || x.decidedAt?.getTime() !== y.decidedAt?.getTime() || x.grantUntil?.getTime() !== y.grantUntil?.getTime()) return false;
  }
  return true;
}

function groupByAgent(rows: readonly OpenApproval[]): Map<string, OpenApproval[]> {
  const out = new Map<string, OpenApproval[]>();
  for (const row of rows) {
    const list = out.get(row.agentId);
    if (list) list.push(row);
    else out.set(row.agentId, [row]);
  }
  return out;
}
