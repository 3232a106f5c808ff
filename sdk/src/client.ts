import { randomUUID } from 'node:crypto';
import type { Agent, OpenApproval } from '../../src/domain/agent.js';
import { decide as decideLocally, hasApprovalRouting, routeDecision, type Decision, type RoutingRules } from '../../src/domain/decide.js';
import { agentFromWire, approvalFromWire, type WireAgent, type WireApproval, type WireSnapshot } from '../../src/domain/wire.js';
import { ArmaloError, errorFromResponse } from './errors.js';
import { SseParser, type SseEvent } from './sse.js';
import type {
  ActionContext,
  ApprovalDecisionRecord,
  ApprovalOutcome,
  ArmaloClientOptions,
  ChangeEvent,
  DecideOptions,
  DecisionAnswer,
  RequireApprovalOptions,
  StreamStatus,
} from './types.js';

/** Answers that stop reconnecting: a wrong token, a token out of scope, a bad agent id. Retrying will not fix them. */
const FATAL_STATUSES = new Set([400, 401, 403]);
/** An unfinished SSE line longer than this is not a stream we understand (a snapshot of thousands of agents is a few MB). */
const MAX_LINE_CHARS = 64 * 1024 * 1024;
/** While the stream is alive, a waiting `requireApproval` still asks the server this often (an event may have been missed in a reconnect). */
const APPROVAL_SAFETY_POLL_MS = 15_000;
/** Longest long-poll, below the server's limit of 60 s. */
const LONG_POLL_MAX_S = 30;
/** Final approval statuses seen on the stream, kept so a waiter that registers late still hears of them. */
const RECENT_FINAL_LIMIT = 1000;

type ApprovalStatus = WireApproval['status'];
interface ApprovalView {
  id: string;
  status: string;
  decisions: ApprovalDecisionRecord[];
}

interface Listeners {
  change: Set<(event: ChangeEvent) => void>;
  error: Set<(error: ArmaloError) => void>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isVersion = (v: unknown): v is string => typeof v === 'string' && /^\d{1,19}$/.test(v);

/** Enough of the wire shape that `agentFromWire` and `decide` cannot be fooled by a truncated or foreign payload. */
function isWireAgent(v: unknown): v is WireAgent {
  return (
    isObject(v) &&
    typeof v.id === 'string' &&
    typeof v.status === 'string' &&
    isVersion(v.version) &&
    Array.isArray(v.grants) &&
    v.grants.every((g) => isObject(g) && typeof g.id === 'string' && typeof g.scope === 'string' && isObject(g.constraints)) &&
    Array.isArray(v.activeActions) &&
    v.activeActions.every((a) => isObject(a) && typeof a.kind === 'string' && Array.isArray(a.scopes))
  );
}

function isWireApproval(v: unknown): v is WireApproval {
  return isObject(v) && typeof v.id === 'string' && typeof v.agentId === 'string' && typeof v.action === 'string' && isObject(v.context) && typeof v.status === 'string';
}

function isApprovalView(v: unknown): v is ApprovalView {
  return isObject(v) && typeof v.id === 'string' && typeof v.status === 'string' && Array.isArray(v.decisions);
}

const FINAL_OUTCOMES: ReadonlySet<string> = new Set(['approved', 'denied', 'expired', 'cancelled']);

/** The request's status as an outcome; `consumed` means it was approved (and then used). */
function outcomeStatus(status: string): ApprovalOutcome['status'] | undefined {
  if (status === 'consumed') return 'approved';
  return FINAL_OUTCOMES.has(status) ? (status as ApprovalOutcome['status']) : undefined;
}

/**
 * The client: keeps a local copy of one agent's permission state from `GET /v1/stream` and answers
 * `check()` from it with the server's own decision functions. See README.md for the contract.
 */
export class ArmaloClient {
  private readonly base: string;
  private readonly agentId: string;
  private readonly token: string;
  private readonly staleAfterMs: number;
  private readonly fetchImpl: typeof globalThis.fetch;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly idleReconnectMs: number;
  private readonly requestTimeoutMs: number;

  // The local copy.
  private readonly agents = new Map<string, Agent>();
  private readonly approvals = new Map<string, OpenApproval>();
  private readonly approvalsByAgent = new Map<string, OpenApproval[]>();
  private routing: RoutingRules = [];
  private routed = false;
  private version = '0';
  private versionNumber = 0n;
  private synced = false;
  /** Set when the server refused the stream for good (401/403/400): the client stopped. */
  private stoppedBy: ArmaloError | undefined;
  private lastAliveAt: number | undefined;

  // The connection.
  private connection: AbortController | undefined;
  private connected = false;
  /** When the current connection's response arrived (performance.now()). */
  private connectedAt = 0;
  private lastEventId = '';
  private serverRetryMs: number | undefined;
  private closed = false;
  private wakeUp: (() => void) | undefined;
  private readonly watchdog: NodeJS.Timeout;

  private readonly readyPromise: Promise<void>;
  private settleReady: { resolve: () => void; reject: (err: ArmaloError) => void } | undefined;
  private readonly listeners: Listeners = { change: new Set(), error: new Set() };
  /** requireApproval waiters, woken when their request changes on the stream (or the stream reconnects). */
  private readonly approvalWaiters = new Map<string, Set<() => void>>();
  private readonly recentFinal = new Map<string, ApprovalStatus>();
  private readonly pendingCalls = new Set<(err: ArmaloError) => void>();

  constructor(options: ArmaloClientOptions) {
    if (!options || typeof options.url !== 'string' || !/^https?:\/\//i.test(options.url)) throw new ArmaloError(0, 'invalid_input', 'createArmaloClient: url must be an http(s) URL');
    if (typeof options.token !== 'string' || options.token.length === 0) throw new ArmaloError(0, 'invalid_input', 'createArmaloClient: token is required');
    if (typeof options.agentId !== 'string' || options.agentId.length === 0) throw new ArmaloError(0, 'invalid_input', 'createArmaloClient: agentId is required');
    const staleAfterMs = options.staleAfterMs ?? 3000;
    if (!Number.isFinite(staleAfterMs) || staleAfterMs <= 0) throw new ArmaloError(0, 'invalid_input', 'createArmaloClient: staleAfterMs must be a positive number');
    this.base = options.url.replace(/\/+$/, '');
    this.token = options.token;
    this.agentId = options.agentId;
    this.staleAfterMs = staleAfterMs;
    const fetchImpl = options.fetch ?? globalThis.fetch;
    this.fetchImpl = (input, init) => fetchImpl(input, init);
    this.initialDelayMs = Math.max(10, options.reconnect?.initialDelayMs ?? 500);
    this.maxDelayMs = Math.max(this.initialDelayMs, options.reconnect?.maxDelayMs ?? 15_000);
    this.idleReconnectMs = Math.max(1000, options.idleReconnectMs ?? 20_000);
    this.requestTimeoutMs = Math.max(1, options.requestTimeoutMs ?? 10_000);

    this.readyPromise = new Promise<void>((resolve, reject) => {
      this.settleReady = { resolve, reject };
    });
    // Nobody has to call ready(): a rejection nobody awaits must not crash the process.
    this.readyPromise.catch(() => undefined);

    // A connection that went quiet (a replica failing closed stops its heartbeats) is dropped, so
    // the next attempt may reach a healthy replica.
    this.watchdog = setInterval(() => {
      const heardAt = Math.max(this.lastAliveAt ?? 0, this.connectedAt);
      if (this.connected && performance.now() - heardAt > this.idleReconnectMs) this.connection?.abort();
    }, 1000);
    this.watchdog.unref();
    void this.run();
  }

  /**
   * May the agent do this now? Synchronous, from the local copy, with the server's own decision
   * functions. Fails closed: `deny` with `view_stale` before the first snapshot, after `close()`,
   * or when the stream has been silent for `staleAfterMs`. A single-use approval is never spent
   * here: such an action answers `approval_required` naming it, and `decide()` uses it.
   */
  check(action: string, context: ActionContext = {}): DecisionAnswer {
    try {
      return this.checkLocally(action, context);
    } catch (err) {
      // A check always answers, whatever a JavaScript caller passes: anything unexpected denies.
      const message = `the check could not be made (${err instanceof Error ? err.message : String(err)}); failing closed`;
      return { decision: 'deny', reasons: [message], reasonCodes: ['decision_error'], agentStatus: this.agents.get(this.agentId)?.status ?? null, viewVersion: this.version };
    }
  }

  private checkLocally(action: string, context: ActionContext): DecisionAnswer {
    if (typeof action !== 'string') throw new TypeError('action must be a string');
    if (typeof context !== 'object' || context === null || Array.isArray(context)) throw new TypeError('context must be an object');
    const stale = this.staleness();
    if (stale) return { decision: 'deny', reasons: [stale], reasonCodes: ['view_stale'], agentStatus: this.agents.get(this.agentId)?.status ?? null, viewVersion: this.version };
    const agent = this.agents.get(this.agentId);
    const request = { agentId: this.agentId, action, context };
    const now = new Date();
    const allowed = decideLocally(agent, request, now, true);
    if (allowed.decision !== 'allow' || !agent || !this.routed) return this.answer(allowed, agent);
    const step = routeDecision(allowed, agent, request, this.routing, this.approvalsByAgent.get(agent.id) ?? [], now);
    if (step.kind === 'final') return this.answer(step.decision, agent, step.approvalRequestId);
    const requestId = step.candidates[0] as string;
    return this.answer(
      {
        decision: 'approval_required',
        reasons: [
          {
            code: 'approval_required',
            message: `${action} is approved by single-use request ${requestId} (rule ${step.rule.id}); call decide() to use it (check() never spends an approval)`,
          },
        ],
      },
      agent,
      requestId,
    );
  }

  /** Asks the server (`POST /v1/decisions`): one round trip; uses up a single-use approval when one allows the action. */
  async decide(action: string, context: ActionContext = {}, options: DecideOptions = {}): Promise<DecisionAnswer> {
    const body = { agentId: this.agentId, action, context, ...(options.atLeastVersion === undefined ? {} : { atLeastVersion: options.atLeastVersion }) };
    const answer = await this.call('POST', '/v1/decisions', body, { signal: options.signal });
    if (!isObject(answer) || !['allow', 'deny', 'approval_required'].includes(answer.decision as string) || !Array.isArray(answer.reasons) || !Array.isArray(answer.reasonCodes)) {
      throw new ArmaloError(200, 'bad_response', 'POST /v1/decisions: the answer is not a decision');
    }
    return answer as unknown as DecisionAnswer;
  }

  /**
   * Asks people for approval (`POST /v1/approval-requests`, idempotent by `idempotencyKey`) and
   * waits for their answer: from the stream's `approval` events, or by long-polling while the
   * stream is down. Resolves `timeout` after `timeoutMs` (the request itself stays open).
   */
  async requireApproval(action: string, context: ActionContext, options: RequireApprovalOptions): Promise<ApprovalOutcome> {
    if (!options || typeof options.justification !== 'string' || options.justification.trim() === '') {
      throw new ArmaloError(0, 'invalid_input', 'requireApproval: justification is required');
    }
    const timeoutMs = options.timeoutMs ?? 600_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new ArmaloError(0, 'invalid_input', 'requireApproval: timeoutMs must be a non-negative number');
    const deadline = Date.now() + timeoutMs;
    const { signal } = options;
    const created = await this.call(
      'POST',
      '/v1/approval-requests',
      { agentId: this.agentId, action, context: context ?? {}, justification: options.justification, idempotencyKey: options.idempotencyKey ?? randomUUID() },
      { signal },
    );
    if (!isApprovalView(created)) throw new ArmaloError(200, 'bad_response', 'POST /v1/approval-requests: the answer is not an approval request');
    const requestId = created.id;
    let view = created;
    // The stream may have told us the outcome before the POST answered; look once, not on every turn.
    let lookLocally = true;
    for (;;) {
      const final = outcomeStatus(view.status);
      if (final) return { status: final, requestId, decisions: view.decisions };
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        const last = await this.getApproval(requestId, 0, signal).catch((err: unknown) => {
          if (err instanceof ArmaloError && (err.code === 'client_closed' || err.code === 'aborted')) throw err;
          return view;
        });
        return { status: outcomeStatus(last.status) ?? 'timeout', requestId, decisions: last.decisions };
      }
      try {
        if (this.staleness() === undefined) {
          await this.waitForApprovalChange(requestId, Math.min(remaining, APPROVAL_SAFETY_POLL_MS), signal, lookLocally);
          lookLocally = false;
          view = await this.getApproval(requestId, 0, signal);
        } else if (remaining >= 1000) {
          view = await this.getApproval(requestId, Math.min(LONG_POLL_MAX_S, Math.floor(remaining / 1000)), signal);
        } else {
          await this.waitForApprovalChange(requestId, remaining, signal);
        }
      } catch (err) {
        // A network blip or a restarting server must not end a wait of minutes; anything else does.
        if (!(err instanceof ArmaloError) || !(err.status === 0 || err.status >= 500) || err.code === 'client_closed' || err.code === 'aborted') throw err;
        await this.waitForApprovalChange(requestId, Math.min(2000, Math.max(0, deadline - Date.now())), signal);
      }
    }
  }

  /** Withdraws an approval request (`POST /v1/approval-requests/{id}/cancel`). */
  async cancelApproval(requestId: string): Promise<void> {
    await this.call('POST', `/v1/approval-requests/${encodeURIComponent(requestId)}/cancel`, {});
  }

  /** Resolves when the first snapshot has arrived; rejects on 401/403/400 (an `ArmaloError`), on `close()`, or after `timeoutMs`. */
  ready(options: { timeoutMs?: number } = {}): Promise<void> {
    if (options.timeoutMs === undefined) return this.readyPromise;
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.readyPromise,
      new Promise<void>((_, reject) => {
        timer = setTimeout(() => reject(new ArmaloError(0, 'timeout', `no snapshot from the change stream within ${options.timeoutMs} ms`)), options.timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /**
   * `change`: the agent or one of its approval requests changed (or a snapshot replaced the copy).
   * `error`: a connection attempt failed or the stream sent something malformed (the client keeps
   * reconnecting, except after 400/401/403). Returns a function that removes the listener.
   */
  on(event: 'change', listener: (event: ChangeEvent) => void): () => void;
  on(event: 'error', listener: (error: ArmaloError) => void): () => void;
  on(event: 'change' | 'error', listener: ((event: ChangeEvent) => void) | ((error: ArmaloError) => void)): () => void {
    const set = this.listeners[event] as Set<typeof listener>;
    if (!set) throw new ArmaloError(0, 'invalid_input', `unknown event ${String(event)}`);
    set.add(listener);
    return () => set.delete(listener);
  }

  /** The connection and the local copy, for health checks. */
  status(): StreamStatus {
    return {
      connected: this.connected,
      synced: this.synced,
      silentForMs: this.lastAliveAt === undefined ? null : Math.round(performance.now() - this.lastAliveAt),
      viewVersion: this.version,
    };
  }

  /** The version of the local copy (a decimal string; `0` before the first snapshot). */
  get viewVersion(): string {
    return this.version;
  }

  /** Stops the stream; later `check()` calls deny (`view_stale`), waiting calls reject (`client_closed`). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.watchdog);
    this.connection?.abort();
    this.wakeUp?.();
    const err = new ArmaloError(0, 'client_closed', 'the client was closed');
    this.settleReady?.reject(err);
    this.settleReady = undefined;
    for (const reject of this.pendingCalls) reject(err);
    this.pendingCalls.clear();
  }

  // ---- check() ---------------------------------------------------------------------------------

  /** Why the local copy cannot be trusted right now; undefined when it can. */
  private staleness(): string | undefined {
    if (this.closed) return 'the client is closed; failing closed';
    if (this.stoppedBy) return `the change stream was refused (${this.stoppedBy.message}); failing closed`;
    if (!this.synced || this.lastAliveAt === undefined) return 'no snapshot from the change stream yet; failing closed';
    const silent = performance.now() - this.lastAliveAt;
    if (silent > this.staleAfterMs) return `the change stream has been silent for ${Math.round(silent)} ms (staleAfterMs ${this.staleAfterMs}); failing closed`;
    return undefined;
  }

  private answer(decision: Decision, agent: Agent | undefined, approvalRequestId?: string): DecisionAnswer {
    const reasons: string[] = [];
    const reasonCodes: DecisionAnswer['reasonCodes'] = [];
    for (const r of decision.reasons) {
      reasons.push(r.message);
      reasonCodes.push(r.code);
    }
    const out: DecisionAnswer = { decision: decision.decision, reasons, reasonCodes, agentStatus: agent?.status ?? null, viewVersion: this.version };
    if (approvalRequestId) out.approvalRequestId = approvalRequestId;
    if (decision.grantId) out.grantId = decision.grantId;
    return out;
  }

  // ---- REST ------------------------------------------------------------------------------------

  private async getApproval(id: string, waitSeconds: number, signal: AbortSignal | undefined): Promise<ApprovalView> {
    const path = `/v1/approval-requests/${encodeURIComponent(id)}${waitSeconds > 0 ? `?wait=${waitSeconds}` : ''}`;
    const view = await this.call('GET', path, undefined, { signal, timeoutMs: (waitSeconds + 10) * 1000 });
    if (!isApprovalView(view)) throw new ArmaloError(200, 'bad_response', `GET ${path}: the answer is not an approval request`);
    return view;
  }

  /** One JSON call with the bearer token; every failure is an `ArmaloError` (the token never appears in one). */
  private async call(method: string, path: string, body: unknown, opts: { signal?: AbortSignal | undefined; timeoutMs?: number } = {}): Promise<unknown> {
    if (this.closed) throw new ArmaloError(0, 'client_closed', 'the client was closed');
    const what = `${method} ${path.split('?')[0]}`;
    const controller = new AbortController();
    let failure: ArmaloError | undefined;
    const stop = (err: ArmaloError) => {
      failure ??= err;
      controller.abort();
    };
    const timer = setTimeout(() => stop(new ArmaloError(0, 'timeout', `${what}: no answer within ${opts.timeoutMs ?? this.requestTimeoutMs} ms`)), opts.timeoutMs ?? this.requestTimeoutMs);
    const onAbort = () => stop(new ArmaloError(0, 'aborted', `${what}: aborted`));
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    this.pendingCalls.add(stop);
    try {
      let res: Response;
      try {
        res = await this.fetchImpl(this.base + path, {
          method,
          headers: { authorization: `Bearer ${this.token}`, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: controller.signal,
        });
      } catch (err) {
        throw failure ?? new ArmaloError(0, 'network_error', `${what}: ${describeNetworkError(err)}`);
      }
      if (!res.ok) throw await errorFromResponse(res, what);
      try {
        return await res.json();
      } catch (err) {
        throw failure ?? new ArmaloError(res.status, 'bad_response', `${what}: the answer is not JSON (${err instanceof Error ? err.message : String(err)})`);
      }
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      this.pendingCalls.delete(stop);
    }
  }

  /** Waits until the stream says request `id` changed (or reconnects), or `ms` passed. */
  private waitForApprovalChange(id: string, ms: number, signal: AbortSignal | undefined, lookLocally = false): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.closed) return reject(new ArmaloError(0, 'client_closed', 'the client was closed'));
      if (signal?.aborted) return reject(new ArmaloError(0, 'aborted', 'requireApproval: aborted'));
      if (lookLocally && (this.recentFinal.has(id) || this.approvals.get(id)?.status === 'approved')) return resolve();
      let waiters = this.approvalWaiters.get(id);
      if (!waiters) this.approvalWaiters.set(id, (waiters = new Set()));
      const set = waiters;
      const done = (err?: ArmaloError) => {
        clearTimeout(timer);
        set.delete(wake);
        if (set.size === 0) this.approvalWaiters.delete(id);
        signal?.removeEventListener('abort', onAbort);
        this.pendingCalls.delete(done);
        if (err) reject(err);
        else resolve();
      };
      const wake = () => done();
      const onAbort = () => done(new ArmaloError(0, 'aborted', 'requireApproval: aborted'));
      const timer = setTimeout(wake, ms);
      set.add(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pendingCalls.add(done);
    });
  }

  // ---- the stream ------------------------------------------------------------------------------

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      const healthy = await this.connectOnce();
      if (this.closed || healthy === 'fatal') return;
      attempt = healthy ? 0 : attempt + 1;
      const base = Math.min(this.maxDelayMs, Math.max(this.initialDelayMs, this.serverRetryMs ?? 0) * 2 ** Math.min(attempt, 20));
      await this.sleep(base / 2 + (Math.random() * base) / 2);
    }
  }

  /** One connection, read to its end. True when it delivered at least one valid event, 'fatal' to stop for good. */
  private async connectOnce(): Promise<boolean | 'fatal'> {
    const controller = new AbortController();
    this.connection = controller;
    let delivered = false;
    try {
      const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, accept: 'text/event-stream', 'cache-control': 'no-store' };
      if (this.lastEventId && this.synced) headers['last-event-id'] = this.lastEventId;
      const res = await this.fetchImpl(`${this.base}/v1/stream?agentId=${encodeURIComponent(this.agentId)}`, { headers, signal: controller.signal });
      if (!res.ok) {
        const err = await errorFromResponse(res, 'GET /v1/stream');
        if (FATAL_STATUSES.has(res.status)) {
          this.fatal(err);
          return 'fatal';
        }
        this.emitError(err);
        return false;
      }
      if (!res.body || !(res.headers.get('content-type') ?? '').toLowerCase().startsWith('text/event-stream')) {
        await res.body?.cancel().catch(() => undefined);
        this.emitError(new ArmaloError(res.status, 'bad_response', 'GET /v1/stream: the answer is not an event stream'));
        return false;
      }
      this.connected = true;
      this.connectedAt = performance.now();
      // Requests waiting for an approval ask again: events during the gap are not replayed.
      this.wakeAllApprovalWaiters();
      const parser = new SseParser(
        {
          event: (event) => {
            if (controller.signal.aborted) return;
            if (this.handleEvent(event)) delivered = true;
            else controller.abort();
          },
          comment: () => {
            if (!controller.signal.aborted) this.lastAliveAt = performance.now();
          },
          retry: (ms) => {
            this.serverRetryMs = Math.min(ms, this.maxDelayMs);
          },
        },
        this.lastEventId,
      );
      const decoder = new TextDecoder();
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done || controller.signal.aborted) break;
        parser.push(decoder.decode(value, { stream: true }));
        if (parser.pending > MAX_LINE_CHARS) {
          this.emitError(new ArmaloError(200, 'bad_response', 'GET /v1/stream: a line longer than the SDK accepts'));
          break;
        }
      }
      await reader.cancel().catch(() => undefined);
    } catch (err) {
      if (!this.closed && !controller.signal.aborted) this.emitError(new ArmaloError(0, 'network_error', `GET /v1/stream: ${describeNetworkError(err)}`));
    } finally {
      controller.abort();
      this.connected = false;
    }
    return delivered;
  }

  /** Applies one event to the local copy; false when it was malformed (the connection is dropped). */
  private handleEvent(event: SseEvent): boolean {
    let data: unknown;
    try {
      data = JSON.parse(event.data);
    } catch {
      return this.malformed(event.event, 'data is not JSON');
    }
    try {
      switch (event.event) {
        case 'snapshot':
          if (!this.applySnapshot(data)) return this.malformed(event.event, 'not a snapshot');
          break;
        case 'agent':
          if (!this.applyAgent(data)) return this.malformed(event.event, 'not an agent change');
          break;
        case 'approval':
          if (!this.applyApproval(data)) return this.malformed(event.event, 'not an approval change');
          break;
        default:
        // A newer server's event kind: counts as alive, changes nothing.
      }
    } catch (err) {
      return this.malformed(event.event, err instanceof Error ? err.message : String(err));
    }
    this.lastAliveAt = performance.now();
    if (event.lastEventId) {
      this.lastEventId = event.lastEventId;
      this.advanceVersion(event.lastEventId);
    }
    return true;
  }

  /**
   * Something this SDK cannot read: the copy may now be wrong, so `check()` fails closed until a
   * fresh snapshot (the reconnect asks for one: no `Last-Event-ID`).
   */
  private malformed(kind: string, why: string): false {
    this.synced = false;
    this.lastEventId = '';
    this.emitError(new ArmaloError(200, 'bad_response', `GET /v1/stream: malformed ${kind} event (${why}); reconnecting for a fresh snapshot`));
    return false;
  }

  private applySnapshot(data: unknown): boolean {
    if (!isObject(data)) return false;
    const snapshot = data as Partial<WireSnapshot>;
    if (!isVersion(snapshot.version) || !Array.isArray(snapshot.agents) || !Array.isArray(snapshot.approvals) || !Array.isArray(snapshot.routing)) return false;
    if (!snapshot.agents.every(isWireAgent) || !snapshot.approvals.every(isWireApproval)) return false;
    const agents = snapshot.agents.map(agentFromWire);
    this.agents.clear();
    for (const agent of agents) this.agents.set(agent.id, agent);
    this.approvals.clear();
    this.approvalsByAgent.clear();
    for (const wire of snapshot.approvals) {
      const open = approvalFromWire(wire);
      if (open) this.approvals.set(open.id, open);
    }
    for (const open of this.approvals.values()) this.indexApprovals(open.agentId);
    this.routing = snapshot.routing;
    this.routed = hasApprovalRouting(this.routing);
    this.version = snapshot.version;
    this.versionNumber = BigInt(snapshot.version);
    this.synced = true;
    this.lastAliveAt = performance.now();
    this.settleReady?.resolve();
    this.settleReady = undefined;
    this.emitChange({ kind: 'snapshot', version: snapshot.version });
    // Waiters ask again: the snapshot may hold news of their requests.
    this.wakeAllApprovalWaiters();
    return true;
  }

  private applyAgent(data: unknown): boolean {
    if (!isObject(data) || !isWireAgent(data.agent)) return false;
    if (!this.synced) return true;
    const agent = agentFromWire(data.agent);
    const known = this.agents.get(agent.id);
    // Replays and replicas may repeat an older state: never go back.
    if (known && known.version > agent.version) return true;
    this.agents.set(agent.id, agent);
    if (isVersion(data.version)) this.advanceVersion(data.version);
    this.emitChange({ kind: 'agent', agentId: agent.id, status: agent.status, version: agent.version.toString() });
    return true;
  }

  private applyApproval(data: unknown): boolean {
    if (!isObject(data) || !isWireApproval(data.approval)) return false;
    const wire = data.approval;
    if (this.synced) {
      const open = approvalFromWire(wire);
      if (open) this.approvals.set(open.id, open);
      else this.approvals.delete(wire.id);
      this.indexApprovals(wire.agentId);
    }
    if (wire.status !== 'pending') {
      this.recentFinal.set(wire.id, wire.status);
      if (this.recentFinal.size > RECENT_FINAL_LIMIT) this.recentFinal.delete(this.recentFinal.keys().next().value as string);
      for (const wake of [...(this.approvalWaiters.get(wire.id) ?? [])]) wake();
    }
    this.emitChange({ kind: 'approval', requestId: wire.id, agentId: wire.agentId, status: wire.status });
    return true;
  }

  private indexApprovals(agentId: string): void {
    const list: OpenApproval[] = [];
    for (const a of this.approvals.values()) if (a.agentId === agentId) list.push(a);
    if (list.length) this.approvalsByAgent.set(agentId, list);
    else this.approvalsByAgent.delete(agentId);
  }

  private advanceVersion(version: string): void {
    if (!isVersion(version)) return;
    const n = BigInt(version);
    if (n > this.versionNumber) {
      this.versionNumber = n;
      this.version = version;
    }
  }

  private wakeAllApprovalWaiters(): void {
    for (const waiters of [...this.approvalWaiters.values()]) for (const wake of [...waiters]) wake();
  }

  private fatal(err: ArmaloError): void {
    this.synced = false;
    this.stoppedBy = err;
    this.emitError(err);
    this.settleReady?.reject(err);
    this.settleReady = undefined;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = done;
    });
  }

  private emitChange(event: ChangeEvent): void {
    for (const listener of this.listeners.change) {
      try {
        listener(event);
      } catch (err) {
        this.emitError(new ArmaloError(0, 'listener_error', `a change listener threw: ${err instanceof Error ? err.message : String(err)}`));
      }
    }
  }

  private emitError(error: ArmaloError): void {
    for (const listener of this.listeners.error) {
      try {
        listener(error);
      } catch {
        // An error listener that throws has nowhere further to report to.
      }
    }
  }
}

function describeNetworkError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  const code = isObject(cause) && typeof cause.code === 'string' ? ` (${cause.code})` : '';
  return `${err.message}${code}`;
}
