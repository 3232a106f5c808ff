import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Agent, OpenApproval } from '../src/domain/agent.js';
import type { Db } from '../src/db/database.js';
import type { WireApproval } from '../src/domain/wire.js';
import { createLogger } from '../src/observability/logger.js';
import type { PermissionView, PermissionViewListener } from '../src/permissions/permission-view.js';
import { ReplayBuffer } from '../src/stream/replay-buffer.js';
import { StreamHub } from '../src/stream/stream-hub.js';
import { LogCapture } from './support/app.js';

// The hub and its replay buffer on their own, with a stand-in view and responses: heartbeats that
// follow the view's freshness, and a client that stops reading being dropped.

const agentAt = (id: string, version: bigint): Agent => ({
  id,
  name: id,
  owner: 'owner@example.com',
  riskTier: 'low',
  status: 'active',
  version,
  grants: [],
  activeActions: [],
  updatedAt: new Date(0),
});

/** The parts of PermissionView the hub reads. */
class FakeView {
  listener: PermissionViewListener | undefined;
  fresh = true;
  version = 0n;
  staleAfterMs = 1000;
  readonly agents = new Map<string, Agent>();
  onChange(listener: PermissionViewListener) {
    this.listener = listener;
    return () => (this.listener = undefined);
  }
  isFresh() {
    return this.fresh;
  }
  get(id: string) {
    return this.agents.get(id);
  }
  allAgents() {
    return this.agents.values();
  }
  *allApprovals(): IterableIterator<OpenApproval> {}
  approvalsFor() {
    return [];
  }
  waitForVersion() {
    return Promise.resolve(false);
  }
  /** A newer agent stored, as `apply` reports it. */
  store(agent: Agent) {
    this.agents.set(agent.id, agent);
    if (agent.version > this.version) this.version = agent.version;
    this.listener?.agentsChanged?.([agent]);
  }
}

/** A response whose unsent output grows with every write unless it `drains`. */
class FakeResponse {
  text = '';
  writableLength = 0;
  destroyed = false;
  ended = false;
  headersSent = false;
  socket = undefined;
  constructor(readonly drains: boolean) {}
  writeHead() {
    this.headersSent = true;
    return this;
  }
  write(chunk: string) {
    this.text += chunk;
    if (!this.drains) this.writableLength += Buffer.byteLength(chunk);
    return true;
  }
  end() {
    this.ended = true;
  }
  destroy() {
    this.destroyed = true;
  }
  once() {
    return this;
  }
}

const hubs: StreamHub[] = [];
function hubOn(view: FakeView, options: { maxBufferedBytes?: number; heartbeatMs?: number } = {}) {
  const logs = new LogCapture();
  const hub = new StreamHub({
    view: view as unknown as PermissionView,
    db: undefined as unknown as Db,
    clock: { now: () => new Date() },
    logger: createLogger({ level: 'info', destination: logs }),
    routing: [],
    ...options,
  });
  hubs.push(hub);
  return { hub, logs };
}
const open = async (hub: StreamHub, res: FakeResponse, lastEventId?: bigint) => hub.open(res as unknown as ServerResponse, undefined, lastEventId, 'req-1');

afterEach(() => {
  for (const hub of hubs.splice(0)) hub.stop();
  vi.useRealTimers();
});

describe('StreamHub', () => {
  it('sends a heartbeat with the version only while the view is fresh', async () => {
    vi.useFakeTimers();
    const view = new FakeView();
    view.store(agentAt('x', 5n));
    const { hub } = hubOn(view, { heartbeatMs: 1000 });
    const res = new FakeResponse(true);
    await open(hub, res);
    vi.advanceTimersByTime(2000);
    expect(res.text.match(/^: ok 5$/gm)).toHaveLength(2);

    view.fresh = false;
    vi.advanceTimersByTime(5000);
    expect(res.text.match(/^: ok/gm)).toHaveLength(2);
    view.fresh = true;
    vi.advanceTimersByTime(1000);
    expect(res.text.match(/^: ok/gm)).toHaveLength(3);
  });

  it('drops a client whose unsent output passes the bound, and keeps serving the others', async () => {
    const view = new FakeView();
    const { hub, logs } = hubOn(view, { maxBufferedBytes: 2000 });
    const slow = new FakeResponse(false);
    const fast = new FakeResponse(true);
    await open(hub, slow);
    await open(hub, fast);
    for (let v = 1n; v <= 30n; v++) view.store(agentAt(`agent-${v}`, v));
    expect(slow.destroyed).toBe(true);
    const slowLength = slow.text.length;
    view.store(agentAt('late', 31n));
    expect(slow.text.length).toBe(slowLength);
    expect(fast.destroyed).toBe(false);
    expect(fast.text.match(/^event: agent$/gm)).toHaveLength(31);
    expect(logs.text()).toContain('fell too far behind');
    expect(hub.connections).toBe(1);
  });

  it('stop ends every stream and stops listening to the view', async () => {
    const view = new FakeView();
    const { hub } = hubOn(view);
    const res = new FakeResponse(true);
    await open(hub, res);
    hub.stop();
    expect(res.ended).toBe(true);
    expect(view.listener).toBeUndefined();
    expect(hub.connections).toBe(0);
  });
});

describe('ReplayBuffer', () => {
  const approval = (id: string, status: WireApproval['status']): WireApproval => ({
    id,
    agentId: 'x',
    action: 'mail:send',
    context: {},
    status,
    createdAt: new Date(0).toISOString(),
    decidedAt: null,
    grantUntil: null,
  });
  const everyAgent = () => true;

  it('replays each agent changed after the version once, in version order, and every request status seen within the lag window', () => {
    const buffer = new ReplayBuffer(10, 0n, 0, 100);
    buffer.add({ version: 1n, agentId: 'x', at: 1000 });
    buffer.add({ version: 2n, agentId: 'y', at: 1010 });
    // Seen while our view was at 2; another replica may have been at 3 already.
    buffer.add({ version: 2n, agentId: 'x', at: 1015, approval: approval('r0', 'denied') });
    buffer.add({ version: 3n, agentId: 'x', at: 1020 });
    buffer.add({ version: 3n, agentId: 'x', at: 1020, approval: approval('r1', 'pending') });
    buffer.add({ version: 3n, agentId: 'x', at: 1030, approval: approval('r2', 'pending') });
    buffer.add({ version: 3n, agentId: 'x', at: 1040, approval: approval('r1', 'cancelled') });
    expect(buffer.since(1n, everyAgent)).toEqual({ agentIds: ['y', 'x'], approvals: [approval('r0', 'denied'), approval('r2', 'pending'), approval('r1', 'cancelled')] });
    expect(buffer.since(3n, everyAgent)).toEqual({ agentIds: [], approvals: [approval('r0', 'denied'), approval('r2', 'pending'), approval('r1', 'cancelled')] });
    expect(buffer.since(1n, (id) => id === 'y')).toEqual({ agentIds: ['y'], approvals: [] });
    // Long after: request changes from before the window are not sent again.
    buffer.add({ version: 4n, agentId: 'y', at: 5000 });
    expect(buffer.since(4n, everyAgent)).toEqual({ agentIds: [], approvals: [] });
  });

  it('cannot serve a resume from before what it holds, nor one whose window reaches back before it started', () => {
    const buffer = new ReplayBuffer(2, 10n, 1000, 100);
    expect(buffer.since(10n, everyAgent)).toBeUndefined();
    expect(buffer.since(9n, everyAgent)).toBeUndefined();
    buffer.add({ version: 11n, agentId: 'x', at: 1050 });
    // Reached 11 within the window after the start: request changes before the start may be missing.
    expect(buffer.since(11n, everyAgent)).toBeUndefined();
    expect(buffer.since(10n, everyAgent)).toBeUndefined();
    buffer.add({ version: 12n, agentId: 'y', at: 2000 });
    expect(buffer.since(12n, everyAgent)).toEqual({ agentIds: [], approvals: [] });
    buffer.add({ version: 13n, agentId: 'x', at: 2010 });
    // 11 was forgotten (and reached too soon after the start); 12 was reached at 2000.
    expect(buffer.since(11n, everyAgent)).toBeUndefined();
    expect(buffer.since(12n, everyAgent)).toEqual({ agentIds: ['x'], approvals: [] });
    buffer.add({ version: 13n, agentId: 'x', at: 2020, approval: approval('r1', 'pending') });
    buffer.add({ version: 14n, agentId: 'z', at: 2030 });
    // The request change at 2020 was forgotten when z came: a resume whose window covers it cannot be served.
    buffer.add({ version: 15n, agentId: 'z', at: 2040 });
    expect(buffer.since(14n, everyAgent)).toBeUndefined();
    buffer.add({ version: 16n, agentId: 'z', at: 3000 });
    expect(buffer.since(15n, everyAgent)).toBeUndefined();
    expect(buffer.since(16n, everyAgent)).toEqual({ agentIds: [], approvals: [] });
    buffer.forgetUpTo(16n, 3500);
    expect(buffer.since(16n, everyAgent)).toBeUndefined();
  });
});
