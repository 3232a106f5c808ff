import { describe, expect } from 'vitest';
import { sampleAgent, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';

const it = appTest();
let app: TestApp;

it.beforeAll(({ app: started }) => {
  app = started;
});

const decide = (agentId: string, action: string, context?: Record<string, unknown>) => decisionOf(app, agentId, action, context);

async function act(agentId: string, body: Record<string, unknown>) {
  return app.call('POST', `/v1/agents/${agentId}/actions`, body);
}

describe('agents and decisions over REST', () => {
  it('registers an agent, shows its grants, and PUT again with the same body changes nothing', async () => {
    const created = await app.call('PUT', '/v1/agents/reg-bot', sampleAgent);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: 'reg-bot', status: 'active', riskTier: 'high', owner: 'ana@example.com' });
    expect(created.body.grants.map((g: any) => [g.scope, g.state])).toEqual([
      ['crm:write', 'active'],
      ['mail:send', 'active'],
      ['payments:refund', 'active'],
      ['payments:transfer', 'active'],
    ]);
    const again = await app.call('PUT', '/v1/agents/reg-bot', sampleAgent);
    expect(again.status).toBe(200);
    const audit = await app.call('GET', '/v1/audit?agentId=reg-bot');
    expect(audit.body.entries.map((e: any) => e.action)).toEqual(['agent.registered']);

    const shrunk = await app.call('PUT', '/v1/agents/reg-bot', { ...sampleAgent, grants: [{ scope: 'crm:write' }] });
    expect(shrunk.status).toBe(200);
    expect(shrunk.body.grants.map((g: any) => g.scope)).toEqual(['crm:write']);
    expect((await decide('reg-bot', 'mail:send')).decision).toBe('deny');
    const got = await app.call('GET', '/v1/agents/reg-bot');
    expect(got.status).toBe(200);
    expect(got.body.grants).toHaveLength(1);
  });

  it('allows a granted action within its constraints and denies with reasons otherwise', async () => {
    await app.call('PUT', '/v1/agents/pay-bot', sampleAgent);
    const ok = await decide('pay-bot', 'payments:transfer', { amount: 9000 });
    expect(ok.decision).toBe('allow');
    expect(ok.reasons[0]).toMatch(/payments:transfer/);

    const over = await decide('pay-bot', 'payments:transfer', { amount: 50_000 });
    expect(over).toMatchObject({ decision: 'deny', reasonCodes: ['constraint_violated'] });
    expect(over.reasons[0]).toContain('exceeds maxAmount 10000');

    const noAmount = await decide('pay-bot', 'payments:transfer');
    expect(noAmount.decision).toBe('deny');
    expect(noAmount.reasons[0]).toContain('context.amount is required');

    const missing = await decide('pay-bot', 'db:drop');
    expect(missing).toMatchObject({ decision: 'deny', reasonCodes: ['no_grant'] });

    const unknown = await decide('nobody-bot', 'payments:transfer', { amount: 1 });
    expect(unknown).toMatchObject({ decision: 'deny', reasonCodes: ['unknown_agent'], agentStatus: null });
  });

  it('covers actions by glob grants and denies an expired grant', async () => {
    const past = new Date(Date.now() - 60_000).toISOString();
    await app.call('PUT', '/v1/agents/glob-bot', {
      ...sampleAgent,
      grants: [{ scope: 'reports:*' }, { scope: 'tickets:close', expiresAt: past }],
    });
    expect((await decide('glob-bot', 'reports:read')).decision).toBe('allow');
    expect((await decide('glob-bot', 'reports:export:pdf')).decision).toBe('allow');
    const expired = await decide('glob-bot', 'tickets:close');
    expect(expired).toMatchObject({ decision: 'deny', reasonCodes: ['grant_expired'] });
  });

  it('contain denies everything but keepInContainment grants, and restore brings back exactly what was taken', async () => {
    await app.call('PUT', '/v1/agents/contain-bot', sampleAgent);
    const res = await act('contain-bot', { action: 'contain', reason: 'prompt injection suspected' });
    expect(res.status).toBe(201);
    expect(res.body.statusAfter).toBe('contained');
    expect(res.body.grantsSuspended.map((g: any) => g.scope).sort()).toEqual(['crm:write', 'payments:refund', 'payments:transfer']);

    const denied = await decide('contain-bot', 'payments:transfer', { amount: 1 });
    expect(denied).toMatchObject({ decision: 'deny', agentStatus: 'contained', reasonCodes: ['agent_contained'] });
    expect(denied.reasons[0]).toContain('prompt injection suspected');
    expect((await decide('contain-bot', 'mail:send')).decision).toBe('allow');

    const twice = await act('contain-bot', { action: 'contain', reason: 'again' });
    expect(twice.status).toBe(409);
    expect(twice.body.error.message).toContain('already contained');

    const restored = await act('contain-bot', { action: 'restore', reason: 'false alarm' });
    expect(restored.status).toBe(201);
    expect(restored.body.statusAfter).toBe('active');
    expect(restored.body.grantsRestored.map((g: any) => g.scope).sort()).toEqual(['crm:write', 'payments:refund', 'payments:transfer']);
    expect((await decide('contain-bot', 'payments:transfer', { amount: 1 })).decision).toBe('allow');
  });

  it('narrow by glob suspends matching scopes only; restore gives them back', async () => {
    await app.call('PUT', '/v1/agents/narrow-bot', sampleAgent);
    const res = await act('narrow-bot', { action: 'narrow', scopes: ['payments:*'], reason: 'unusual transfers' });
    expect(res.status).toBe(201);
    expect(res.body.statusAfter).toBe('narrowed');
    expect(res.body.grantsSuspended.map((g: any) => g.scope).sort()).toEqual(['payments:refund', 'payments:transfer']);
    const denied = await decide('narrow-bot', 'payments:refund');
    expect(denied).toMatchObject({ decision: 'deny', reasonCodes: ['scope_narrowed'] });
    expect((await decide('narrow-bot', 'crm:write')).decision).toBe('allow');

    const nothing = await act('narrow-bot', { action: 'narrow', scopes: ['hr:*'], reason: 'x' });
    expect(nothing.status).toBe(400);
    expect(nothing.body.error.message).toContain('matches none');

    // Contain on top of a narrow, then one restore lifts both.
    await act('narrow-bot', { action: 'contain', reason: 'escalating' });
    const status = await app.call('GET', '/v1/agents/narrow-bot');
    expect(status.body.status).toBe('contained');
    expect(status.body.activeActions.map((a: any) => a.kind)).toEqual(['narrow', 'contain']);
    const restored = await act('narrow-bot', { action: 'restore', reason: 'fixed' });
    expect(restored.body.liftedActions).toHaveLength(2);
    expect(restored.body.grantsRestored.map((g: any) => g.scope).sort()).toEqual(['crm:write', 'payments:refund', 'payments:transfer']);
    expect((await decide('narrow-bot', 'payments:refund')).decision).toBe('allow');
  });

  it('revoke denies everything, keepInContainment included, and cannot be stacked', async () => {
    await app.call('PUT', '/v1/agents/revoke-bot', sampleAgent);
    const res = await act('revoke-bot', { action: 'revoke', reason: 'compromised credentials' });
    expect(res.status).toBe(201);
    expect(res.body.grantsRevoked).toHaveLength(4);
    const denied = await decide('revoke-bot', 'mail:send');
    expect(denied).toMatchObject({ decision: 'deny', agentStatus: 'revoked', reasonCodes: ['agent_revoked'] });
    expect((await act('revoke-bot', { action: 'contain', reason: 'x' })).status).toBe(409);
    const status = await app.call('GET', '/v1/agents/revoke-bot');
    expect(status.body.grants.every((g: any) => g.state === 'revoked')).toBe(true);
    const restored = await act('revoke-bot', { action: 'restore', reason: 'rotated credentials' });
    expect(restored.body.grantsRestored).toHaveLength(4);
    expect((await decide('revoke-bot', 'mail:send')).decision).toBe('allow');
  });

  it('dry run reports the blast radius and changes nothing', async () => {
    await app.call('PUT', '/v1/agents/dry-bot', sampleAgent);
    const before = await app.call('GET', '/v1/audit?agentId=dry-bot');
    const res = await act('dry-bot', { action: 'contain', reason: 'what if', dryRun: true });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ dryRun: true, statusBefore: 'active', statusAfter: 'contained', pendingApprovalsCancelled: [] });
    expect(res.body.action.id).toBeNull();
    expect(res.body.grantsSuspended.map((g: any) => g.scope).sort()).toEqual(['crm:write', 'payments:refund', 'payments:transfer']);
    expect((await decide('dry-bot', 'crm:write')).decision).toBe('allow');
    expect((await app.call('GET', '/v1/agents/dry-bot')).body.status).toBe('active');
    const after = await app.call('GET', '/v1/audit?agentId=dry-bot');
    expect(after.body.entries).toEqual(before.body.entries);
  });

  it('records the API token name as the actor and 404s an unknown agent', async () => {
    await app.call('PUT', '/v1/agents/actor-bot', sampleAgent);
    await act('actor-bot', { action: 'contain', reason: 'check actor' });
    const audit = await app.call('GET', '/v1/audit?agentId=actor-bot&limit=1');
    expect(audit.body.entries[0]).toMatchObject({ actor: 'api:platform', action: 'agent.contain', subject: 'actor-bot' });
    expect((await app.call('GET', '/v1/agents/ghost-bot')).status).toBe(404);
    expect((await act('ghost-bot', { action: 'contain', reason: 'x' })).status).toBe(404);
  });
});

describe('a retried action (Idempotency-Key)', () => {
  const post = (agentId: string, body: Record<string, unknown>, key: string) => app.call('POST', `/v1/agents/${agentId}/actions`, body, { headers: { 'idempotency-key': key } });

  it('answers the first result, marked replayed, and acts once; a restore too, though nothing is left to restore', async () => {
    await app.call('PUT', '/v1/agents/retry-bot', sampleAgent);
    const narrow = { action: 'narrow', scopes: ['crm:write'], reason: 'a retried narrow' };
    const first = await post('retry-bot', narrow, 'narrow-1');
    expect(first.status).toBe(201);
    expect(first.body.version).toMatch(/^\d+$/);
    // The stored answer carries the version the action committed: the retry answers it as it was.
    const again = await post('retry-bot', narrow, 'narrow-1');
    expect(again.status).toBe(201);
    expect(again.body).toEqual({ ...first.body, replayed: true });
    const entries = (await app.call('GET', '/v1/audit?agentId=retry-bot')).body.entries as { action: string }[];
    expect(entries.filter((e) => e.action === 'agent.narrow')).toHaveLength(1);
    expect((await app.call('GET', '/v1/agents/retry-bot')).body.status).toBe('narrowed');

    const restored = await post('retry-bot', { action: 'restore', reason: 'fixed' }, 'restore-1');
    expect(restored.status).toBe(201);
    expect(restored.body.statusAfter).toBe('active');
    const restoredAgain = await post('retry-bot', { action: 'restore', reason: 'fixed' }, 'restore-1');
    expect(restoredAgain.status).toBe(201);
    expect(restoredAgain.body).toEqual({ ...restored.body, replayed: true });
    // Without the key, the same restore is a new request: nothing is left to restore.
    expect((await act('retry-bot', { action: 'restore', reason: 'fixed' })).status).toBe(409);
    // A new key is a new action.
    const second = await post('retry-bot', narrow, 'narrow-2');
    expect(second.status).toBe(201);
    expect(second.body.action.id).not.toBe(first.body.action.id);
  });

  it('refuses a bad key with 400, naming the header, and changes nothing', async () => {
    await app.call('PUT', '/v1/agents/bad-key-bot', sampleAgent);
    for (const bad of ['', 'x'.repeat(201), 'has space', 'caf\u00e9']) {
      const res = await post('bad-key-bot', { action: 'contain', reason: 'x' }, bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(res.body.error.message).toContain('Idempotency-Key');
    }
    expect((await app.call('GET', '/v1/agents/bad-key-bot')).body.status).toBe('active');
    expect((await decide('bad-key-bot', 'crm:write')).decision).toBe('allow');
  });
});
