import type { ServerResponse } from 'node:http';
import type { Clock } from '../core/clock.js';
import type { Db } from '../db/database.js';
import type { Agent, OpenApproval } from '../domain/agent.js';
import type { RoutingRules } from '../domain/decide.js';
import { agentToWire, approvalToWire, type WireApproval } from '../domain/wire.js';
import { createLimitedLog, type LimitedLog, type Logger } from '../observability/logger.js';
import type { ApprovalsChange, PermissionView } from '../permissions/permission-view.js';
import { ReplayBuffer } from './replay-buffer.js';
import { derivedFrom, readLive, type Live } from '../policy/policy-holder.js';

export interface StreamHubOptions {
  view: PermissionView;
  db: Db;
  clock: Clock;
  logger: Logger;
  /** The policy's routing rules, or a function answering the ones in force (live policy). */
  routing: Live<RoutingRules>;
  /** How many recent changes a resume can be served from (default 10,000). */
  replayBufferSize?: number;
  /** How often a fresh view sends `: ok <version>` (default 1 s). */
  heartbeatMs?: number;
  /** Unsent output a connection may hold beyond its first snapshot before it is dropped (default 1 MB). */
  maxBufferedBytes?: number;
  /**
   * How far this view may lag the database while fresh (default twice its staleness bound plus a
   * second): a resume replays request changes seen this long before the view reached its version.
   */
  resumeWindowMs?: number;
}

export const DEFAULT_REPLAY_BUFFER_SIZE = 10_000;
const DEFAULT_HEARTBEAT_MS = 1000;
const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;
/** How long a resume from a version this replica has not reached yet waits for it before a snapshot. */
const RESUME_AHEAD_WAIT_MS = 250;
/** Retries of the query that learns how requests ended, before the affected streams are resynchronised. */
const FINAL_STATUS_RETRY_MS = [200, 1000];

/** One open stream: everything the hub needs to write to it. */
interface Connection {
  res: ServerResponse;
  /** The one agent it sees, or undefined for every agent. */
  agentId: string | undefined;
  /** Dropped once its unsent output passes this (its snapshot plus `maxBufferedBytes`). */
  limit: number;
}

/**
 * Serves the change stream from this replica's permission view: one per app. It listens to the
 * view, remembers recent changes for resumes, and writes each event once per connection in scope.
 * Events are serialised once and shared by every connection; the only Postgres read is how requests
 * that left the open set ended (one query per change, shared by all connections).
 */
export class StreamHub {
  private readonly all = new Set<Connection>();
  private readonly byAgent = new Map<string, Set<Connection>>();
  private readonly buffer: ReplayBuffer;
  /** The routing rules as JSON, re-serialised when a policy reload replaces them. */
  private readonly routingJson: () => string;
  private readonly maxBufferedBytes: number;
  private readonly unsubscribe: () => void;
  private readonly timer: NodeJS.Timeout;
  private readonly limitedLog: LimitedLog;
  private stopped = false;

  constructor(private readonly opts: StreamHubOptions) {
    const window = opts.resumeWindowMs ?? 2 * opts.view.staleAfterMs + 1000;
    this.buffer = new ReplayBuffer(opts.replayBufferSize ?? DEFAULT_REPLAY_BUFFER_SIZE, opts.view.version, Date.now(), window);
    this.routingJson = derivedFrom(() => readLive(opts.routing), (rules) => JSON.stringify(rules));
    this.maxBufferedBytes = opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.limitedLog = createLimitedLog(opts.logger);
    this.unsubscribe = opts.view.onChange({
      agentsChanged: (agents) => this.onAgents(agents),
      approvalsChanged: (changes) => this.onApprovals(changes),
    });
    this.timer = setInterval(() => this.heartbeat(), opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
    this.timer.unref();
  }

  get connections(): number {
    return this.all.size + [...this.byAgent.values()].reduce((n, set) => n + set.size, 0);
  }

  /**
   * Starts a stream on `res` (headers not yet sent): a replay when `lastEventId` can be served from
   * the buffer, else a snapshot; then live events until the client goes or the hub stops.
   */
  async open(res: ServerResponse, agentId: string | undefined, lastEventId: bigint | undefined, requestId: string): Promise<void> {
    const { view } = this.opts;
    // Listened for from the start: a client may leave while we wait below, and 'close' fires once.
    const state: { conn?: Connection; closed: boolean } = { closed: false };
    res.once('close', () => {
      state.closed = true;
      if (state.conn) this.unregister(state.conn);
    });
    if (lastEventId !== undefined && lastEventId > view.version) {
      // Probably resumed from a replica a little ahead of this one: give this view a moment to catch up.
      await view.waitForVersion(lastEventId, RESUME_AHEAD_WAIT_MS);
      if (state.closed || this.stopped) {
        res.destroy();
        return;
      }
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      'x-request-id': requestId,
    });
    res.socket?.setNoDelay(true);
    const inScope = agentId === undefined ? () => true : (id: string) => id === agentId;
    const replay = lastEventId !== undefined && lastEventId <= view.version ? this.buffer.since(lastEventId, inScope) : undefined;
    const first = replay ? this.replayText(replay) : this.snapshotText(agentId);
    res.write(`retry: 1000\n\n${first}`);
    if (state.closed) return;
    // Registered in the same turn as the snapshot was read: every later change reaches it as an event.
    state.conn = { res, agentId, limit: res.writableLength + this.maxBufferedBytes };
    this.register(state.conn);
  }

  /** Ends every stream and stops listening (the app is stopping). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.unsubscribe();
    for (const conn of [...this.all, ...[...this.byAgent.values()].flatMap((s) => [...s])]) conn.res.end();
    this.all.clear();
    this.byAgent.clear();
  }

  /**
   * The routing rules changed (a policy reload): every open stream gets a fresh snapshot, which
   * replaces the client's copy, so `check()` answers by the new rules at once.
   */
  routingChanged(): void {
    if (this.stopped) return;
    for (const conn of this.all) this.write(conn, this.snapshotText(undefined));
    for (const [agentId, set] of this.byAgent) {
      const text = this.snapshotText(agentId);
      for (const conn of set) this.write(conn, text);
    }
  }

  private register(conn: Connection): void {
    if (conn.agentId === undefined) {
      this.all.add(conn);
      return;
    }
    let set = this.byAgent.get(conn.agentId);
    if (!set) this.byAgent.set(conn.agentId, (set = new Set()));
    set.add(conn);
  }

  private unregister(conn: Connection): void {
    if (conn.agentId === undefined) {
      this.all.delete(conn);
      return;
    }
    const set = this.byAgent.get(conn.agentId);
    set?.delete(conn);
    if (set?.size === 0) this.byAgent.delete(conn.agentId);
  }

  private snapshotText(agentId: string | undefined): string {
    const { view } = this.opts;
    const agents: string[] = [];
    const approvals: string[] = [];
    if (agentId === undefined) {
      for (const agent of view.allAgents()) agents.push(this.wireAgent(agent));
      for (const approval of view.allApprovals()) approvals.push(JSON.stringify(approvalToWire(approval)));
    } else {
      const agent = view.get(agentId);
      if (agent) agents.push(this.wireAgent(agent));
      for (const approval of view.approvalsFor(agentId)) approvals.push(JSON.stringify(approvalToWire(approval)));
    }
    const version = view.version.toString();
    const data = `{"version":"${version}","agents":[${agents.join(',')}],"approvals":[${approvals.join(',')}],"routing":${this.routingJson()}}`;
    return `event: snapshot\nid: ${version}\ndata: ${data}\n\n`;
  }

  /** Each changed agent's current state (in version order), then the requests' newest statuses. */
  private replayText(replay: { agentIds: string[]; approvals: WireApproval[] }): string {
    const { view } = this.opts;
    const agents = replay.agentIds.map((id) => view.get(id)).filter((a): a is Agent => a !== undefined);
    agents.sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
    let text = agents.map((a) => this.agentEvent(a)).join('');
    const version = view.version.toString();
    for (const approval of replay.approvals) text += approvalEvent(approval, version);
    return text;
  }

  /** Not cached: a live change is serialised once for all streams, and a copy per agent would cost memory the view does not. */
  private wireAgent(agent: Agent): string {
    return JSON.stringify(agentToWire(agent));
  }

  private agentEvent(agent: Agent): string {
    const version = agent.version.toString();
    return `event: agent\nid: ${version}\ndata: {"version":"${version}","agent":${this.wireAgent(agent)}}\n\n`;
  }

  private onAgents(agents: readonly Agent[]): void {
    for (const agent of agents) {
      this.buffer.add({ version: agent.version, agentId: agent.id, at: Date.now() });
      if (this.hasListeners(agent.id)) this.send(agent.id, this.agentEvent(agent));
    }
  }

  /**
   * New and newly approved requests come from the view as they are. Requests that left the open set
   * are looked up in Postgres (one query for the whole change) to say how they ended.
   */
  private onApprovals(changes: readonly ApprovalsChange[]): void {
    const ended: OpenApproval[] = [];
    for (const { before, after } of changes) {
      // By id, not by scanning: an agent with a thousand open requests changes a thousand times in
      // a burst, and a scan per request made each change cost the square of the list.
      const earlier = new Map<string, OpenApproval>();
      for (const was of before) earlier.set(was.id, was);
      for (const now of after) {
        const was = earlier.get(now.id);
        earlier.delete(now.id);
        if (!was || was.status !== now.status || was.decidedAt?.getTime() !== now.decidedAt?.getTime() || was.grantUntil?.getTime() !== now.grantUntil?.getTime()) {
          this.emitApproval(approvalToWire(now));
        }
      }
      // What is left was open before and is not now.
      for (const was of earlier.values()) ended.push(was);
    }
    if (ended.length > 0) void this.emitEnded(ended);
  }

  private async emitEnded(ended: OpenApproval[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        const finals = await this.finalStatuses(ended);
        if (this.stopped) return;
        for (const approval of finals) this.emitApproval(approval);
        return;
      } catch (err) {
        if (this.stopped) return;
        const delay = FINAL_STATUS_RETRY_MS[attempt];
        if (delay !== undefined) {
          await new Promise((resolve) => setTimeout(resolve, delay).unref());
          continue;
        }
        // Streams in scope would keep these requests open: end them, and make resumes start afresh.
        this.limitedLog('warn', 'stream-final-status', { err: (err as Error).message, requests: ended.length }, 'could not learn how approval requests ended; the affected streams restart with a snapshot');
        this.buffer.forgetUpTo(this.opts.view.version, Date.now());
        const agentIds = new Set(ended.map((a) => a.agentId));
        for (const conn of [...this.all, ...[...agentIds].flatMap((id) => [...(this.byAgent.get(id) ?? [])])]) conn.res.destroy();
        return;
      }
    }
  }

  /** How each request ended, from Postgres; a request still open there is left out (the view will show it again). */
  private async finalStatuses(ended: OpenApproval[]): Promise<WireApproval[]> {
    const rows = await this.opts.db
      .selectFrom('approval_requests')
      .select(['id', 'status', 'decided_at', 'grant_until', 'consumed_at'])
      .where('id', 'in', ended.map((a) => a.id))
      .execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    const now = this.opts.clock.now();
    const out: WireApproval[] = [];
    for (const was of ended) {
      const row = byId.get(was.id);
      let status: WireApproval['status'];
      if (!row) status = 'cancelled';
      else if (row.status === 'approved' && row.consumed_at) status = 'consumed';
      else if (row.status === 'approved') {
        // Out of the open set without being used: its grant window closed.
        if (!row.grant_until || row.grant_until > now) continue;
        status = 'expired';
      } else if (row.status === 'pending') continue;
      else status = row.status as WireApproval['status'];
      out.push(approvalToWire({ ...was, status, decidedAt: row?.decided_at ?? was.decidedAt, grantUntil: row?.grant_until ?? was.grantUntil }));
    }
    return out;
  }

  private emitApproval(approval: WireApproval): void {
    const { view } = this.opts;
    this.buffer.add({ version: view.version, agentId: approval.agentId, at: Date.now(), approval });
    if (this.hasListeners(approval.agentId)) this.send(approval.agentId, approvalEvent(approval, view.version.toString()));
  }

  private hasListeners(agentId: string): boolean {
    return this.all.size > 0 || this.byAgent.has(agentId);
  }

  private send(agentId: string, text: string): void {
    for (const conn of this.all) this.write(conn, text);
    const scoped = this.byAgent.get(agentId);
    if (scoped) for (const conn of scoped) this.write(conn, text);
  }

  private heartbeat(): void {
    const { view } = this.opts;
    // A replica that cannot vouch for its view stays silent, so clients' own staleness bounds trip.
    if (this.stopped || !view.isFresh()) return;
    const text = `: ok ${view.version.toString()}\n\n`;
    for (const conn of this.all) this.write(conn, text);
    for (const set of this.byAgent.values()) for (const conn of set) this.write(conn, text);
  }

  /** Writes, or drops a client too far behind (it resumes with Last-Event-ID). */
  private write(conn: Connection, text: string): void {
    if (conn.res.destroyed) return;
    conn.res.write(text);
    if (conn.res.writableLength > conn.limit) {
      this.limitedLog('warn', 'stream-slow-client', { agentId: conn.agentId ?? '*', buffered: conn.res.writableLength }, 'dropped a change-stream client that fell too far behind');
      conn.res.destroy();
      this.unregister(conn);
    }
  }
}

function approvalEvent(approval: WireApproval, version: string): string {
  return `event: approval\nid: ${version}\ndata: ${JSON.stringify({ approval })}\n\n`;
}
