import { afterAll, describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';
import { TcpProxy } from './support/tcp-proxy.js';

// Two replicas on the same Postgres and Redis. Replica B reaches Redis through a proxy the test
// can cut or black-hole, like a network partition between B and Redis.
const STALE_AFTER_MS = 1500;
let a: TestApp;
let b: TestApp;
const proxy = new TcpProxy('127.0.0.1', 6379);

const decision = (app: TestApp, agentId: string, action: string) => decisionOf(app, agentId, action, { amount: 10 });

const it = appTest({ env: { ARMALO_VIEW_STALE_AFTER_MS: String(STALE_AFTER_MS) } });
it.beforeAll(async ({ app, startApp }) => {
  a = app;
  const port = await proxy.start();
  b = await startApp({ env: { ARMALO_ROLE: 'web', REDIS_URL: `redis://127.0.0.1:${port}` } });
});

afterAll(async () => {
  await proxy.stop();
});

describe('two replicas', () => {
  it('a contain through one replica makes the other deny within one second', async () => {
    await a.call('PUT', '/v1/agents/shared-bot', sampleAgent);
    await waitFor(async () => (await decision(b, 'shared-bot', 'crm:write')).decision === 'allow', 2000, 'B to see the new agent');

    const started = Date.now();
    const res = await a.call('POST', '/v1/agents/shared-bot/actions', { action: 'contain', reason: 'replica test' });
    expect(res.status).toBe(201);
    let elapsed = 0;
    for (;;) {
      const d = await decision(b, 'shared-bot', 'crm:write');
      elapsed = Date.now() - started;
      if (d.decision === 'deny') {
        expect(d.reasonCodes).toEqual(['agent_contained']);
        break;
      }
      expect(elapsed).toBeLessThan(1000);
    }
    expect(elapsed).toBeLessThan(1000);

    // And back: a restore through B is seen by A just as fast.
    await b.call('POST', '/v1/agents/shared-bot/actions', { action: 'restore', reason: 'all clear' });
    await waitFor(async () => (await decision(a, 'shared-bot', 'crm:write')).decision === 'allow', 1000, 'A to see the restore');
  });

  it('a replica cut off from Redis fails closed within its bound, then resynchronises', async () => {
    await a.call('PUT', '/v1/agents/cut-bot', sampleAgent);
    await waitFor(async () => (await decision(b, 'cut-bot', 'crm:write')).decision === 'allow', 2000, 'B to see the agent');

    const cutAt = Date.now();
    await proxy.cut();
    await waitFor(async () => (await decision(b, 'cut-bot', 'crm:write')).decision === 'deny', STALE_AFTER_MS + 2000, 'B to fail closed');
    expect(Date.now() - cutAt).toBeLessThanOrEqual(STALE_AFTER_MS + 1000);
    expect((await decision(b, 'cut-bot', 'crm:write')).reasonCodes).toEqual(['view_stale']);
    expect((await b.call('GET', '/readyz')).status).toBe(503);
    // A is unaffected.
    expect((await decision(a, 'cut-bot', 'crm:write')).decision).toBe('allow');

    // While B is cut off, A contains the agent; B misses that push.
    await a.call('POST', '/v1/agents/cut-bot/actions', { action: 'contain', reason: 'during partition' });
    await proxy.start();
    await waitFor(async () => (await b.call('GET', '/readyz')).status === 200, 10_000, 'B to become ready again');
    // Fresh again, and it saw what it missed: contained, so denied for the right reason.
    const after = await decision(b, 'cut-bot', 'crm:write');
    expect(after).toMatchObject({ decision: 'deny', reasonCodes: ['agent_contained'] });
    expect((await decision(b, 'cut-bot', 'mail:send')).decision).toBe('allow');
  });

  it('a silent push channel (connection open, nothing flowing) also fails closed, and recovers', async () => {
    await a.call('PUT', '/v1/agents/quiet-bot', sampleAgent);
    await waitFor(async () => (await decision(b, 'quiet-bot', 'crm:write')).decision === 'allow', 2000, 'B to see the agent');
    const at = Date.now();
    proxy.blackhole();
    await waitFor(async () => (await decision(b, 'quiet-bot', 'crm:write')).decision === 'deny', STALE_AFTER_MS + 2000, 'B to fail closed');
    expect(Date.now() - at).toBeLessThanOrEqual(STALE_AFTER_MS + 1000);
    expect((await decision(b, 'quiet-bot', 'crm:write')).reasonCodes).toEqual(['view_stale']);
    proxy.resume();
    await waitFor(async () => (await decision(b, 'quiet-bot', 'crm:write')).decision === 'allow', 10_000, 'B to recover');
  });
});
