import { afterAll, describe, expect } from 'vitest';
import { OTHER_TOKEN, sampleAgent, TOKEN, waitFor, type TestApp } from './support/app.js';
import { appTest, type StartApp } from './support/fixture.js';
import { APPROVALS_TEST_POLICY } from './support/approvals-policy.js';

// `GET /v1/stream` on two replicas (A: web and worker; B: web only) sharing one Postgres and one
// Redis prefix, as in production; a third (C, with a replay buffer of 4 changes) for one test.
const PLATFORM = 'tok_platform_scope_0123456789';
const BOT = 'tok_agent_scope_stream_a_0123';
const SMALL_BUFFER = 4;

let a: TestApp;
let b: TestApp;
let c: TestApp;
const agent = { ...sampleAgent, owner: 'owner@example.com' };
const streams: StreamClient[] = [];

const it = appTest({
  policy: APPROVALS_TEST_POLICY,
  env: { ARMALO_API_TOKENS: `platform:${TOKEN},automation:${OTHER_TOKEN},plat:${PLATFORM}:platform,bot:${BOT}:agent=stream-a` },
});
let startApp: StartApp;
// A short resume window: here B's view trails A's by milliseconds, not by a staleness bound.
const RESUME_WINDOW_MS = 500;
const startB = () => startApp({ env: { ARMALO_ROLE: 'web' }, appOptions: { stream: { resumeWindowMs: RESUME_WINDOW_MS } } });
// C keeps 4 changes, and no lag window, so what it can replay depends on its buffer alone.
const startC = () => startApp({ env: { ARMALO_ROLE: 'web' }, appOptions: { stream: { replayBufferSize: SMALL_BUFFER, resumeWindowMs: 0 } } });

interface SseMessage {
  event: string;
  id: string;
  data: any;
}

/** A small SSE reader: fetch, then `event:` / `id:` / `data:` lines and `:` comments as they arrive. */
class StreamClient {
  readonly events: SseMessage[] = [];
  readonly comments: string[] = [];
  retry: number | undefined;
  ended = false;
  private readonly abort = new AbortController();

  private constructor(
    readonly status: number,
    readonly headers: Headers,
    readonly errorBody: any,
  ) {}

  static async open(app: TestApp, opts: { token?: string | null; query?: string; lastEventId?: string } = {}): Promise<StreamClient> {
    const token = opts.token === undefined ? PLATFORM : opts.token;
    const client = new StreamClient(0, new Headers(), undefined);
    const res = await fetch(`${app.url}/v1/stream${opts.query ?? ''}`, {
      headers: {
        accept: 'text/event-stream',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(opts.lastEventId !== undefined ? { 'last-event-id': opts.lastEventId } : {}),
      },
      signal: client.abort.signal,
    });
    const opened = Object.assign(client, { status: res.status, headers: res.headers });
    if (res.status !== 200) {
      Object.assign(opened, { errorBody: await res.json() });
      return opened;
    }
    streams.push(opened);
    void opened.read(res.body!);
    return opened;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    let event: Partial<SseMessage> & { data?: string } = {};
    try {
      for await (const chunk of body) {
        buffer += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buffer.indexOf('\n')) !== -1) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (line === '') {
            if (event.data !== undefined) this.events.push({ event: event.event ?? 'message', id: event.id ?? '', data: JSON.parse(event.data) });
            event = {};
          } else if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
          else if (line.startsWith('event: ')) event.event = line.slice(7);
          else if (line.startsWith('id: ')) event.id = line.slice(4);
          else if (line.startsWith('data: ')) event.data = (event.data === undefined ? '' : `${event.data}\n`) + line.slice(6);
          else if (line.startsWith('retry: ')) this.retry = Number(line.slice(7));
        }
      }
    } catch {
      // Aborted by close(), or the server ended the connection.
    }
    this.ended = true;
  }

  /** The first event (from `from` on) that matches, waiting for it. */
  async next(match: (e: SseMessage) => boolean, what: string, from = 0, timeoutMs = 5000): Promise<SseMessage> {
    await waitFor(() => this.events.slice(from).some(match), timeoutMs, what);
    return this.events.slice(from).find(match)!;
  }

  /** Waits for a heartbeat sent after this call: everything written before it has arrived. */
  async settle(): Promise<void> {
    const seen = this.comments.length;
    await waitFor(() => this.comments.length > seen + 1, 5000, 'two heartbeats');
  }

  /** The last `id:` seen, as a client resuming would send it. */
  lastId(): string {
    return this.events[this.events.length - 1]!.id;
  }

  close(): void {
    this.abort.abort();
  }
}

const agentEvent = (id: string, status?: string) => (e: SseMessage) => e.event === 'agent' && e.data.agent.id === id && (!status || e.data.agent.status === status);

async function act(app: TestApp, agentId: string, body: Record<string, unknown>): Promise<string> {
  const res = await app.call('POST', `/v1/agents/${agentId}/actions`, body);
  expect(res.status).toBe(201);
  return res.body.version as string;
}

it.beforeAll(async ({ startApp: start }) => {
  startApp = start;
  a = await startApp({ appOptions: { relayPollMs: 200, stream: { resumeWindowMs: RESUME_WINDOW_MS } } });
  b = await startB();
  c = await startC();
  for (const id of ['stream-a', 'stream-b']) expect((await a.call('PUT', `/v1/agents/${id}`, agent)).status).toBeLessThan(300);
  await waitFor(() => b.view!.get('stream-b') !== undefined, 3000, 'B to see the agents');
}, 60_000);

afterAll(async () => {
  for (const s of streams) s.close();
  await c?.stop();
  await b?.stop();
  await a?.stop();
}, 60_000);

describe('GET /v1/stream', () => {
  it('refuses a missing token, unknown query keys, a bad agentId and another agent', async () => {
    const none = await StreamClient.open(a, { token: null });
    expect(none.status).toBe(401);
    const unknownKey = await StreamClient.open(a, { query: '?agent=stream-a' });
    expect(unknownKey.status).toBe(400);
    expect(unknownKey.errorBody.error).toMatchObject({ code: 'invalid_input' });
    expect(unknownKey.errorBody.error.message).toContain('"agent"');
    const badId = await StreamClient.open(a, { query: '?agentId=%2Fetc%2Fpasswd' });
    expect(badId.status).toBe(400);
    expect(badId.errorBody.error.message).toContain('agentId');
    const twice = await StreamClient.open(a, { query: '?agentId=stream-a&agentId=stream-b' });
    expect(twice.status).toBe(400);
    const other = await StreamClient.open(a, { token: BOT, query: '?agentId=stream-b' });
    expect(other.status).toBe(403);
    expect(other.errorBody.error.message).toContain('agent=stream-a');
    const own = await StreamClient.open(a, { token: BOT, query: '?agentId=stream-a' });
    expect(own.status).toBe(200);
    own.close();
  });

  it('starts with a snapshot of the agents in scope: every agent for a platform token, one for an agent token', async () => {
    const platform = await StreamClient.open(a);
    expect(platform.status).toBe(200);
    expect(platform.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(platform.headers.get('cache-control')).toBe('no-store');
    expect(platform.headers.get('x-accel-buffering')).toBe('no');
    const snap = await platform.next((e) => e.event === 'snapshot', 'the snapshot');
    expect(platform.events[0]).toBe(snap);
    expect(platform.retry).toBe(1000);
    expect(snap.id).toBe(snap.data.version);
    expect(BigInt(snap.data.version)).toBe(a.view!.version);
    expect(snap.data.agents.map((x: any) => x.id).sort()).toEqual(['stream-a', 'stream-b']);
    expect(snap.data.agents[0].grants.map((g: any) => g.scope)).toContain('payments:transfer');
    // The routing rules travel (ids and roles), the people in the roles do not.
    expect(snap.data.routing.map((r: any) => r.id)).toEqual(['big-payments', 'mail-out']);
    expect(JSON.stringify(snap.data)).not.toContain('U0ONCALL1');

    const bot = await StreamClient.open(a, { token: BOT });
    const botSnap = await bot.next((e) => e.event === 'snapshot', 'the agent token snapshot');
    expect(botSnap.data.agents.map((x: any) => x.id)).toEqual(['stream-a']);

    const one = await StreamClient.open(b, { query: '?agentId=stream-b' });
    const oneSnap = await one.next((e) => e.event === 'snapshot', 'the snapshot for one agent');
    expect(oneSnap.data.agents.map((x: any) => x.id)).toEqual(['stream-b']);
    for (const s of [platform, bot, one]) s.close();
  });

  it('sends heartbeats with the view version while the view is fresh', async () => {
    const client = await StreamClient.open(b);
    await waitFor(() => client.comments.length >= 2, 5000, 'heartbeats');
    expect(client.comments[0]).toMatch(/^ok \d+$/);
    expect(BigInt(client.comments[0]!.slice(3))).toBeGreaterThanOrEqual(BigInt(client.events[0]!.id));
    client.close();
  });

  it('a contain through the REST API arrives as an agent event, on both replicas, only where in scope', async () => {
    const bot = await StreamClient.open(a, { token: BOT });
    const onB = await StreamClient.open(b);
    const otherAgent = await StreamClient.open(b, { query: '?agentId=stream-b' });
    await otherAgent.next((e) => e.event === 'snapshot', 'the snapshot');

    const version = await act(a, 'stream-a', { action: 'contain', reason: 'stream test' });
    for (const client of [bot, onB]) {
      const event = await client.next(agentEvent('stream-a', 'contained'), 'the contain event');
      expect(event.id).toBe(version);
      expect(event.data.version).toBe(version);
      expect(event.data.agent.activeActions[0]).toMatchObject({ kind: 'contain', reason: 'stream test' });
    }
    // B sent the event to onB before this heartbeat, and otherAgent shares B: nothing for stream-a came.
    await otherAgent.settle();
    expect(otherAgent.events.filter((e) => e.event === 'agent')).toEqual([]);

    const restored = await act(a, 'stream-a', { action: 'restore', reason: 'all clear' });
    expect((await bot.next(agentEvent('stream-a', 'active'), 'the restore event')).id).toBe(restored);
    for (const s of [bot, onB, otherAgent]) s.close();
  });

  it('an approval request arrives as pending, its cancellation as cancelled, for its agent only', async () => {
    const bot = await StreamClient.open(a, { token: BOT });
    const onB = await StreamClient.open(b);
    const otherAgent = await StreamClient.open(a, { query: '?agentId=stream-b' });
    await otherAgent.next((e) => e.event === 'snapshot', 'the snapshot');

    const created = await a.call('POST', '/v1/approval-requests', { agentId: 'stream-a', action: 'mail:send', justification: 'newsletter' });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const isRequest = (status: string) => (e: SseMessage) => e.event === 'approval' && e.data.approval.id === id && e.data.approval.status === status;
    for (const client of [bot, onB]) {
      const pending = await client.next(isRequest('pending'), 'the pending request');
      expect(pending.data.approval).toMatchObject({ agentId: 'stream-a', action: 'mail:send' });
      expect(pending.id).toMatch(/^\d+$/);
    }
    // A new stream's snapshot holds the open request.
    const late = await StreamClient.open(b, { token: BOT });
    const snap = await late.next((e) => e.event === 'snapshot', 'the snapshot');
    expect(snap.data.approvals.map((x: any) => x.id)).toEqual([id]);

    const cancelled = await a.call('POST', `/v1/approval-requests/${id}/cancel`);
    expect(cancelled.status).toBe(200);
    for (const client of [bot, onB, late]) await client.next(isRequest('cancelled'), 'the cancellation');
    await otherAgent.settle();
    expect(otherAgent.events.filter((e) => e.event === 'approval')).toEqual([]);
    for (const s of [bot, onB, otherAgent, late]) s.close();
  });

  it('an approval that is decided arrives as approved or denied, and a single-use one as consumed once used', async () => {
    const payer = { ...agent, grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 100_000 } }, { scope: 'mail:send' }] };
    expect((await a.call('PUT', '/v1/agents/stream-c', payer)).status).toBeLessThan(300);
    const client = await StreamClient.open(b, { query: '?agentId=stream-c' });
    await client.next((e) => e.event === 'snapshot', 'the snapshot');
    const person = (slack: string, emails: string[] = []) => ({ actor: `slack:${slack}`, platform: 'slack' as const, slack, emails });
    const statusOf = (id: string, status: string) => (e: SseMessage) => e.event === 'approval' && e.data.approval.id === id && e.data.approval.status === status;

    const big = await a.call('POST', '/v1/approval-requests', { agentId: 'stream-c', action: 'payments:transfer', context: { amount: 50_000 }, justification: 'reinsurer' });
    expect(big.status).toBe(201);
    await client.next(statusOf(big.body.id, 'pending'), 'the pending payment');
    await a.approvals.decide(big.body.id, person('U0RISK'), 'approve', null);
    await a.approvals.decide(big.body.id, person('U0CISO', ['ciso@example.com']), 'approve', null);
    const approved = await client.next(statusOf(big.body.id, 'approved'), 'the approval');
    expect(approved.data.approval.decidedAt).not.toBeNull();
    const used = await a.call('POST', '/v1/decisions', { agentId: 'stream-c', action: 'payments:transfer', context: { amount: 50_000 } });
    expect(used.body).toMatchObject({ decision: 'allow', approvalRequestId: big.body.id });
    await client.next(statusOf(big.body.id, 'consumed'), 'the approval used up');

    const mail = await a.call('POST', '/v1/approval-requests', { agentId: 'stream-c', action: 'mail:send', justification: 'blast' });
    await client.next(statusOf(mail.body.id, 'pending'), 'the pending mail');
    await a.approvals.decide(mail.body.id, person('U0ONCALL1'), 'deny', 'not today');
    await client.next(statusOf(mail.body.id, 'denied'), 'the denial');
    client.close();
  });

  it('a burst of requests for one agent reaches both views and each stream once per request, and their cancellations too', async () => {
    expect((await a.call('PUT', '/v1/agents/stream-d', agent)).status).toBeLessThan(300);
    await waitFor(() => b.view!.get('stream-d') !== undefined, 5000, 'B to see stream-d');
    const clients = [await StreamClient.open(a, { query: '?agentId=stream-d' }), await StreamClient.open(b, { query: '?agentId=stream-d' })];
    for (const client of clients) await client.next((e) => e.event === 'snapshot', 'the snapshot');
    const burst = 40;
    const created = await Promise.all(
      Array.from({ length: burst }, (_, i) => a.call('POST', '/v1/approval-requests', { agentId: 'stream-d', action: 'mail:send', justification: `burst ${i}` })),
    );
    expect(created.map((r) => r.status)).toEqual(created.map(() => 201));
    const ids = new Set(created.map((r) => r.body.id as string));
    const ofBurst = (client: StreamClient, status: string) => client.events.filter((e) => e.event === 'approval' && ids.has(e.data.approval.id) && e.data.approval.status === status);
    // Each replica reads the agent's requests again after changes, many changes to one read: none is missed.
    for (const app of [a, b]) await waitFor(() => ids.size === app.view!.approvalsFor('stream-d').filter((x) => ids.has(x.id)).length, 10_000, 'every request in the view');
    for (const client of clients) await waitFor(() => ofBurst(client, 'pending').length >= burst, 10_000, 'every pending request on the stream');
    for (const client of clients) await client.settle();
    for (const client of clients) expect(new Set(ofBurst(client, 'pending').map((e) => e.data.approval.id))).toEqual(ids);
    for (const client of clients) expect(ofBurst(client, 'pending')).toHaveLength(burst);

    const cancelled = await Promise.all([...ids].map((id) => a.call('POST', `/v1/approval-requests/${id}/cancel`)));
    expect(cancelled.map((r) => r.status)).toEqual(cancelled.map(() => 200));
    for (const app of [a, b]) await waitFor(() => app.view!.approvalsFor('stream-d').length === 0, 10_000, 'no open request left in the view');
    for (const client of clients) await waitFor(() => ofBurst(client, 'cancelled').length >= burst, 10_000, 'every cancellation on the stream');
    for (const client of clients) await client.settle();
    for (const client of clients) expect(ofBurst(client, 'cancelled')).toHaveLength(burst);
    for (const client of clients) client.close();
  }, 60_000);

  it('several clients on both replicas all receive a change made on A', async () => {
    const clients = await Promise.all([a, a, a, b, b, b].map((app, i) => StreamClient.open(app, i % 2 ? { token: BOT } : {})));
    const version = await act(a, 'stream-a', { action: 'narrow', scopes: ['crm:write'], reason: 'fan out' });
    await Promise.all(clients.map(async (c) => expect((await c.next(agentEvent('stream-a', 'narrowed'), 'the narrow event')).id).toBe(version)));
    await act(a, 'stream-a', { action: 'restore', reason: 'fan out over' });
    for (const c of clients) c.close();
  });

  it('a client resuming on the other replica gets exactly the agents it missed', async () => {
    const first = await StreamClient.open(a);
    await first.next((e) => e.event === 'snapshot', 'the snapshot');
    const lastId = first.lastId();
    first.close();

    await act(a, 'stream-a', { action: 'contain', reason: 'while away' });
    const restored = await act(a, 'stream-a', { action: 'restore', reason: 'still away' });
    await waitFor(() => b.view!.version >= BigInt(restored), 3000, 'B to hold the change');

    const resumed = await StreamClient.open(b, { lastEventId: lastId });
    await resumed.settle();
    // No snapshot: one event for the one agent that changed, with its current state (and perhaps
    // request statuses seen just before, which a resume sends again).
    expect(resumed.events.map((e) => e.event)).not.toContain('snapshot');
    const agents = resumed.events.filter((e) => e.event === 'agent');
    expect(agents.map((e) => [e.id, e.data.agent.id, e.data.agent.status])).toEqual([[restored, 'stream-a', 'active']]);
    resumed.close();
  });

  it('a client resuming on the other replica gets the new status of a request it saw pending', async () => {
    const first = await StreamClient.open(a, { token: BOT });
    const created = await a.call('POST', '/v1/approval-requests', { agentId: 'stream-a', action: 'mail:send', justification: 'digest' });
    const id = created.body.id as string;
    await first.next((e) => e.event === 'approval' && e.data.approval.id === id, 'the pending request');
    const lastId = first.lastId();
    first.close();

    expect((await a.call('POST', `/v1/approval-requests/${id}/cancel`)).status).toBe(200);
    await waitFor(() => !b.view!.approvalsFor('stream-a').some((r) => r.id === id), 3000, 'B to drop the request');
    const resumed = await StreamClient.open(b, { token: BOT, lastEventId: lastId });
    await resumed.next((e) => e.event === 'approval' && e.data.approval.id === id && e.data.approval.status === 'cancelled', 'the cancellation replayed');
    expect(resumed.events.some((e) => e.event === 'snapshot')).toBe(false);
    resumed.close();
  });

  it('a resume from further back than the replay buffer, or from an unknown version, gets a snapshot', async () => {
    const first = await StreamClient.open(a);
    await first.next((e) => e.event === 'snapshot', 'the snapshot');
    const lastId = first.lastId();
    first.close();
    const versions: string[] = [];
    for (let i = 0; i <= SMALL_BUFFER; i++) {
      const res = await a.call('PUT', `/v1/agents/fill-${i}`, agent);
      expect(res.status).toBeLessThan(300);
      versions.push(res.body.version as string);
    }
    const newest = versions[SMALL_BUFFER]!;
    await waitFor(() => c.view!.version >= BigInt(newest), 3000, 'C to hold the changes');

    const onC = await StreamClient.open(c, { lastEventId: lastId });
    const snap = await onC.next(() => true, 'the first event');
    expect(snap.event).toBe('snapshot');
    expect(snap.data.agents.map((x: any) => x.id)).toContain(`fill-${SMALL_BUFFER}`);
    // From a version C still holds: a replay of the two agents changed since.
    const recent = await StreamClient.open(c, { lastEventId: versions[SMALL_BUFFER - 2] });
    await recent.settle();
    expect(recent.events.map((e) => [e.event, e.id])).toEqual([
      ['agent', versions[SMALL_BUFFER - 1]],
      ['agent', newest],
    ]);

    // A keeps 10,000 changes: the same resume is a replay there, in version order.
    const onA = await StreamClient.open(a, { lastEventId: lastId });
    await onA.settle();
    expect(onA.events.filter((e) => e.event === 'agent').map((e) => e.data.agent.id)).toEqual(Array.from({ length: SMALL_BUFFER + 1 }, (_, i) => `fill-${i}`));
    // Besides those, at most request statuses seen shortly before (sending one again is harmless).
    expect(onA.events.filter((e) => e.event !== 'agent').map((e) => e.event)).not.toContain('snapshot');

    const garbage = await StreamClient.open(a, { lastEventId: 'not-a-version' });
    expect((await garbage.next(() => true, 'the first event')).event).toBe('snapshot');
    const ahead = await StreamClient.open(a, { lastEventId: '999999999999' });
    expect((await ahead.next(() => true, 'the first event')).event).toBe('snapshot');
    for (const s of [onC, recent, onA, garbage, ahead]) s.close();
  });

  it('a replica that restarts ends its streams; a client resuming on the new one catches up', async () => {
    const client = await StreamClient.open(b);
    await client.next((e) => e.event === 'snapshot', 'the snapshot');
    const lastId = client.lastId();
    await b.stop();
    await waitFor(() => client.ended, 5000, 'the stream to end');

    const contained = await act(a, 'stream-b', { action: 'contain', reason: 'while B was down' });
    b = await startB();
    const resumed = await StreamClient.open(b, { lastEventId: lastId });
    const snap = await resumed.next(() => true, 'the first event');
    expect(snap.event).toBe('snapshot');
    expect(snap.data.agents.find((x: any) => x.id === 'stream-b')).toMatchObject({ status: 'contained', version: contained });

    const restored = await act(a, 'stream-b', { action: 'restore', reason: 'B is back' });
    expect((await resumed.next(agentEvent('stream-b', 'active'), 'the live event after restart')).id).toBe(restored);
    resumed.close();
  }, 60_000);
});
