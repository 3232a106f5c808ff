import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';
import { ManualClock } from '../src/core/clock.js';
import { sweep } from '../jobs/sweep.job.js';

let real: TestApp;
let manual: TestApp;
const clock = new ManualClock(new Date('2026-11-27T03:00:00Z'));

const it = appTest({ appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app, startApp }) => {
  real = app;
  // A second app, on a database and queue prefix of its own, with a clock the test moves.
  manual = await startApp({ isolated: true, plain: true, env: { ARMALO_ROLE: 'web' }, appOptions: { clock } });
});

const decide = async (app: TestApp, agentId: string, action: string) => (await decisionOf(app, agentId, action, { amount: 5 })).decision;

describe('actions with a ttl', () => {
  it('a contain with a 1-second ttl lifts itself through a delayed job', async () => {
    await real.call('PUT', '/v1/agents/ttl-bot', sampleAgent);
    const res = await real.call('POST', '/v1/agents/ttl-bot/actions', { action: 'contain', reason: 'short hold', ttl: 1 });
    expect(res.status).toBe(201);
    expect(new Date(res.body.action.expiresAt).getTime() - new Date(res.body.action.createdAt).getTime()).toBe(1000);
    expect(await decide(real, 'ttl-bot', 'crm:write')).toBe('deny');
    await waitFor(async () => (await decide(real, 'ttl-bot', 'crm:write')) === 'allow', 8000, 'the ttl to lift the contain');
    const agent = await real.call('GET', '/v1/agents/ttl-bot');
    expect(agent.body.status).toBe('active');
    const audit = await real.call('GET', '/v1/audit?agentId=ttl-bot');
    expect(audit.body.entries[0]).toMatchObject({ actor: 'system:ttl', action: 'agent.action_expired' });
    expect(audit.body.entries[0].payload.grantsRestored.map((g: any) => g.scope).sort()).toEqual(['crm:write', 'payments:refund', 'payments:transfer']);
  });

  it('a narrow ttl lifts only that narrow; a contain in force stays in force', async () => {
    await manual.call('PUT', '/v1/agents/layer-bot', sampleAgent);
    await manual.call('POST', '/v1/agents/layer-bot/actions', { action: 'narrow', scopes: ['mail:*'], reason: 'mail abuse', ttl: '30m' });
    await manual.call('POST', '/v1/agents/layer-bot/actions', { action: 'contain', reason: 'worse', ttl: '2h' });
    expect(await decide(manual, 'layer-bot', 'mail:send')).toBe('deny');

    clock.advance(31 * 60_000);
    expect(await sweep({ db: manual.db, clock, agents: manual.agents })).toMatchObject({ lifted: 1 });
    // The narrow is gone; mail:send is kept in containment, so it is allowed again; the rest is not.
    expect(await decide(manual, 'layer-bot', 'mail:send')).toBe('allow');
    expect(await decide(manual, 'layer-bot', 'crm:write')).toBe('deny');

    clock.advance(90 * 60_000);
    expect(await sweep({ db: manual.db, clock, agents: manual.agents })).toMatchObject({ lifted: 1 });
    expect(await decide(manual, 'layer-bot', 'crm:write')).toBe('allow');
    // Idempotent: the delayed jobs for the same actions, arriving late, change nothing.
    const actions = await manual.db.selectFrom('agent_actions').select('id').where('agent_id', '=', 'layer-bot').execute();
    for (const a of actions) expect(await manual.agents.liftExpired(a.id, 'layer-bot')).toBe('not_in_force');
    const expiries = (await manual.call('GET', '/v1/audit?agentId=layer-bot')).body.entries.filter((e: any) => e.action === 'agent.action_expired');
    expect(expiries).toHaveLength(2);
  });

  it('a lift that comes early does nothing, and a restore before expiry wins', async () => {
    await manual.call('PUT', '/v1/agents/early-bot', sampleAgent);
    const res = await manual.call('POST', '/v1/agents/early-bot/actions', { action: 'contain', reason: 'hold', ttl: '1h' });
    expect(await manual.agents.liftExpired(res.body.action.id, 'early-bot')).toBe('not_due');
    expect(await decide(manual, 'early-bot', 'crm:write')).toBe('deny');
    await manual.call('POST', '/v1/agents/early-bot/actions', { action: 'restore', reason: 'resolved' });
    clock.advance(2 * 3600_000);
    expect(await manual.agents.liftExpired(res.body.action.id, 'early-bot')).toBe('not_in_force');
    expect(await decide(manual, 'early-bot', 'crm:write')).toBe('allow');
  });
});
