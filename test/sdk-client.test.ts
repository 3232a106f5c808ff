import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ArmaloError, createArmaloClient, type ArmaloClient, type ChangeEvent } from '../sdk/src/index.js';
import type { Agent } from '../src/domain/agent.js';
import { agentToWire, type WireApproval, type WireSnapshot } from '../src/domain/wire.js';
import { loadPolicyFile } from '../src/policy/load-policy.js';
import { waitFor } from './support/app.js';

/**
 * The SDK's client against a tiny SSE server in this file that speaks the wire format of
 * docs/stream.md: the local copy, check(), staleness, reconnects and refusals, without the service.
 */

const TOKEN = 'tok_agent_sdk_local_0123456789';
const routing = loadPolicyFile('policy/armalo-policy.example.yaml').routing;

function agent(over: Partial<Agent> = {}): Agent {
  const at = new Date('2026-01-01T00:00:00Z');
  return {
    id: 'pay-bot',
    name: 'Payments bot',
    owner: 'owner@example.com',
    riskTier: 'medium',
    status: 'active',
    version: 5n,
    updatedAt: at,
    grants: [{ id: 'g-pay', scope: 'payments:transfer', constraints: { maxAmount: 100_000 }, keepInContainment: false, expiresAt: null, grantedBy: 'api:ops', grantedAt: at }],
    activeActions: [],
    trustTier: 'gold',
    trustScore: 800,
    newestEvidenceAt: new Date(),
    ...over,
  };
}

const contained = (version: bigint) =>
  agent({
    version,
    status: 'contained',
    activeActions: [{ id: 'act-1', kind: 'contain', scopes: [], reason: 'suspicious transfers', actor: 'slack:U0ONCALL1', createdAt: new Date(), expiresAt: null, touched: [] }],
  });

function approval(over: Partial<WireApproval>): WireApproval {
  return { id: 'req-1', agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 50_000 }, status: 'pending', createdAt: new Date().toISOString(), decidedAt: null, grantUntil: null, ...over };
}

/** The fake stream: every connection is kept so a test can write to it, and its request is recorded. */
class FakeStream {
  server!: Server;
  url = '';
  connections: { req: IncomingMessage; res: ServerResponse }[] = [];
  /** What the next connection gets before it is held open; a status other than 200 answers a JSON error. */
  status = 200;
  onConnect: (res: ServerResponse, req: IncomingMessage) => void = (res) => this.send(res, 'snapshot', '10', this.snapshot());

  snapshot(over: Partial<WireSnapshot> = {}): WireSnapshot {
    return { version: '10', agents: [agentToWire(agent())], approvals: [], routing, ...over };
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      if (!req.url?.startsWith('/v1/stream')) {
        res.writeHead(404).end();
        return;
      }
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'unauthorized', message: 'missing or invalid bearer token', requestId: 'r1' } }));
        return;
      }
      if (this.status !== 200) {
        res.writeHead(this.status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'view_stale', message: 'not fresh', requestId: 'r2' } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' });
      res.write('retry: 50\n\n');
      this.connections.push({ req, res });
      this.onConnect(res, req);
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get latest(): ServerResponse {
    return this.connections.at(-1)!.res;
  }

  send(res: ServerResponse, event: string, id: string, data: unknown): void {
    res.write(`event: ${event}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  endAll(): void {
    for (const { res } of this.connections) res.end();
  }

  async stop(): Promise<void> {
    this.endAll();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

const fake = new FakeStream();
let clients: ArmaloClient[] = [];
const heartbeat = setInterval(() => {
  for (const { res } of fake.connections) if (!res.writableEnded) res.write(': ok\n\n');
}, 100);

function client(options: { staleAfterMs?: number; token?: string } = {}): ArmaloClient {
  const c = createArmaloClient({ url: fake.url, token: options.token ?? TOKEN, agentId: 'pay-bot', staleAfterMs: options.staleAfterMs ?? 3000, reconnect: { initialDelayMs: 20, maxDelayMs: 100 } });
  clients.push(c);
  return c;
}

beforeAll(() => fake.start());
afterEach(() => {
  for (const c of clients) c.close();
  clients = [];
  fake.endAll();
  fake.connections = [];
  fake.status = 200;
  fake.onConnect = (res) => fake.send(res, 'snapshot', '10', fake.snapshot());
});
afterAll(async () => {
  clearInterval(heartbeat);
  await fake.stop();
});

describe('SDK client against a local stream', () => {
  it('denies with view_stale before the first snapshot, then answers from the local copy like the server', async () => {
    fake.onConnect = () => undefined;
    const c = client();
    const before = c.check('payments:transfer', { amount: 100 });
    expect(before).toMatchObject({ decision: 'deny', reasonCodes: ['view_stale'], viewVersion: '0' });
    await waitFor(() => fake.connections.length === 1, 5000, 'a connection');
    expect(fake.connections[0]!.req.headers.accept).toBe('text/event-stream');
    expect(c.check('payments:transfer', { amount: 100 }).reasonCodes).toEqual(['view_stale']); // heartbeats alone do not make it ready
    fake.send(fake.latest, 'snapshot', '10', fake.snapshot());
    await c.ready();
    expect(c.check('payments:transfer', { amount: 100 })).toEqual({
      decision: 'allow',
      reasons: ['allowed by grant payments:transfer'],
      reasonCodes: ['granted'],
      agentStatus: 'active',
      grantId: 'g-pay',
      viewVersion: '10',
    });
    expect(c.check('payments:refund', {})).toMatchObject({ decision: 'deny', reasonCodes: ['no_grant'] });
    expect(c.check('payments:transfer', { amount: 200_000 })).toMatchObject({ decision: 'deny', reasonCodes: ['constraint_violated'] });
  });

  it('an agent event (containment) turns the next check into a deny and tells change listeners', async () => {
    const c = client();
    const changes: ChangeEvent[] = [];
    c.on('change', (e) => changes.push(e));
    await c.ready();
    fake.send(fake.latest, 'agent', '12', { version: '12', agent: agentToWire(contained(12n)) });
    await waitFor(() => c.check('payments:transfer', { amount: 100 }).decision === 'deny', 5000, 'the deny');
    expect(c.check('payments:transfer', { amount: 100 })).toMatchObject({ reasonCodes: ['agent_contained'], agentStatus: 'contained', viewVersion: '12' });
    expect(changes).toContainEqual({ kind: 'agent', agentId: 'pay-bot', status: 'contained', version: '12' });
    // An older state (a replay) never overwrites a newer one.
    fake.send(fake.latest, 'agent', '11', { version: '11', agent: agentToWire(agent({ version: 11n })) });
    fake.send(fake.latest, 'marker', '13', {});
    await waitFor(() => c.viewVersion === '13', 5000, 'the events after the replay');
    expect(c.check('payments:transfer', { amount: 100 }).decision).toBe('deny');
  });

  it('fails closed with view_stale when the stream goes silent past staleAfterMs, and recovers with the heartbeat', async () => {
    let silent = false;
    fake.onConnect = (res) => {
      fake.send(res, 'snapshot', '10', fake.snapshot());
      // Silence this connection's heartbeats while the test says so.
      const write = res.write.bind(res) as (chunk: string) => boolean;
      res.write = ((chunk: string) => (silent && chunk.startsWith(':') ? true : write(chunk))) as typeof res.write;
    };
    const c = client({ staleAfterMs: 400 });
    await c.ready();
    expect(c.check('payments:transfer', { amount: 100 }).decision).toBe('allow');
    silent = true;
    await waitFor(() => c.check('payments:transfer', { amount: 100 }).decision === 'deny', 5000, 'view_stale');
    const stale = c.check('payments:transfer', { amount: 100 });
    expect(stale.reasonCodes).toEqual(['view_stale']);
    expect(stale.reasons[0]).toMatch(/silent for \d+ ms \(staleAfterMs 400\)/);
    silent = false;
    await waitFor(() => c.check('payments:transfer', { amount: 100 }).decision === 'allow', 5000, 'fresh again');
  });

  it('reconnects after the stream ends and resumes with Last-Event-ID', async () => {
    const c = client();
    await c.ready();
    fake.send(fake.latest, 'agent', '15', { version: '15', agent: agentToWire(agent({ version: 15n })) });
    await waitFor(() => c.viewVersion === '15', 5000, 'version 15');
    fake.onConnect = (res) => fake.send(res, 'agent', '16', { version: '16', agent: agentToWire(contained(16n)) });
    fake.latest.end();
    await waitFor(() => fake.connections.length === 2, 5000, 'the reconnect');
    expect(fake.connections[1]!.req.headers['last-event-id']).toBe('15');
    await waitFor(() => c.check('payments:transfer', { amount: 100 }).decision === 'deny', 5000, 'the replayed containment');
  });

  it('keeps retrying on 503 and connects when the server is fresh again', async () => {
    fake.status = 503;
    const c = client();
    const errors: ArmaloError[] = [];
    c.on('error', (e) => errors.push(e));
    await waitFor(() => errors.length >= 2, 5000, 'two refusals');
    expect(errors[0]).toMatchObject({ status: 503, code: 'view_stale' });
    fake.status = 200;
    await c.ready({ timeoutMs: 5000 });
    expect(c.check('payments:transfer', { amount: 1 }).decision).toBe('allow');
  });

  it('a wrong token: ready() rejects with a typed 401 that does not contain the token, and the client stops', async () => {
    const wrong = 'tok_wrong_secret_value_987654321';
    const c = client({ token: wrong });
    const err = await c.ready().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ArmaloError);
    expect(err).toMatchObject({ status: 401, code: 'unauthorized', isAuthError: true, requestId: 'r1' });
    expect(String((err as Error).message)).not.toContain(wrong);
    expect(c.check('payments:transfer', { amount: 1 }).reasons[0]).toMatch(/refused/);
  });

  it('a malformed event makes checks fail closed until a fresh snapshot (asked for without Last-Event-ID)', async () => {
    const c = client();
    const errors: ArmaloError[] = [];
    c.on('error', (e) => errors.push(e));
    await c.ready();
    fake.onConnect = () => undefined;
    fake.latest.write('event: agent\nid: 11\ndata: {"version":"11","agent":{"id":"pay-bot"}}\n\n');
    await waitFor(() => errors.some((e) => e.code === 'bad_response'), 5000, 'the malformed event');
    expect(c.check('payments:transfer', { amount: 1 }).reasonCodes).toEqual(['view_stale']);
    await waitFor(() => fake.connections.length === 2, 5000, 'the reconnect');
    expect(fake.connections[1]!.req.headers['last-event-id']).toBeUndefined();
    fake.send(fake.latest, 'snapshot', '11', fake.snapshot({ version: '11' }));
    await waitFor(() => c.check('payments:transfer', { amount: 1 }).decision === 'allow', 5000, 'allow after the snapshot');
  });

  it('routing: approval_required over the rule limit; a pending request is named; a single-use approval is not spent locally; a window allows', async () => {
    const c = client();
    await c.ready();
    const big = { amount: 50_000 };
    expect(c.check('payments:transfer', { amount: 500 }).decision).toBe('allow');
    const first = c.check('payments:transfer', big);
    expect(first).toMatchObject({ decision: 'approval_required', reasonCodes: ['approval_required'] });
    expect(first.approvalRequestId).toBeUndefined();
    expect(first.reasons[0]).toContain('large-payments');

    fake.send(fake.latest, 'approval', '11', { approval: approval({ id: 'req-1' }) });
    await waitFor(() => c.check('payments:transfer', big).approvalRequestId === 'req-1', 5000, 'the pending request');
    expect(c.check('payments:transfer', big).reasons[0]).toContain('request req-1 is pending');

    fake.send(fake.latest, 'approval', '12', { approval: approval({ id: 'req-1', status: 'approved', decidedAt: new Date().toISOString() }) });
    await waitFor(() => /single-use/.test(c.check('payments:transfer', big).reasons[0] ?? ''), 5000, 'the approval');
    const single = c.check('payments:transfer', big);
    expect(single).toMatchObject({ decision: 'approval_required', approvalRequestId: 'req-1' });
    expect(single.reasons[0]).toContain('decide()');
    // Bound to the context the approvers saw: a larger amount is not covered.
    expect(c.check('payments:transfer', { amount: 60_000 }).approvalRequestId).toBeUndefined();
    // Still there: check() spent nothing.
    expect(c.check('payments:transfer', big).approvalRequestId).toBe('req-1');

    fake.send(fake.latest, 'approval', '13', { approval: approval({ id: 'req-1', status: 'consumed' }) });
    fake.send(fake.latest, 'approval', '14', { approval: approval({ id: 'req-2', status: 'approved', decidedAt: new Date().toISOString(), grantUntil: new Date(Date.now() + 3_600_000).toISOString() }) });
    await waitFor(() => c.check('payments:transfer', big).decision === 'allow', 5000, 'the window');
    expect(c.check('payments:transfer', big)).toMatchObject({ approvalRequestId: 'req-2', reasonCodes: ['granted', 'approved'], grantId: 'g-pay' });
  });

  it('bad input to check() answers deny (decision_error) and never throws', async () => {
    const c = client();
    await c.ready();
    const loose = c as unknown as { check(action: unknown, context?: unknown): ReturnType<ArmaloClient['check']> };
    for (const [action, context] of [[undefined, {}], [42, {}], ['payments:transfer', null], ['payments:transfer', [1]], ['payments:transfer', 'amount=5']] as const) {
      expect(loose.check(action, context)).toMatchObject({ decision: 'deny', reasonCodes: ['decision_error'], agentStatus: 'active' });
    }
    expect(c.check('payments:transfer', { amount: 5 }).decision).toBe('allow');
  });

  it('close(): checks deny, ready() of a never-connected client rejects with client_closed', async () => {
    fake.onConnect = () => undefined;
    const c = client();
    const pending = c.ready();
    c.close();
    await expect(pending).rejects.toMatchObject({ code: 'client_closed' });
    expect(c.check('payments:transfer', { amount: 1 })).toMatchObject({ decision: 'deny', reasonCodes: ['view_stale'] });
  });

  it('refuses bad options with a clear error', () => {
    expect(() => createArmaloClient({ url: 'ftp://x', token: TOKEN, agentId: 'a' })).toThrow(/url must be an http/);
    expect(() => createArmaloClient({ url: fake.url, token: '', agentId: 'a' })).toThrow(/token is required/);
    expect(() => createArmaloClient({ url: fake.url, token: TOKEN, agentId: 'a', staleAfterMs: -1 })).toThrow(/staleAfterMs/);
  });
});
