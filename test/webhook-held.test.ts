import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf, signedWebhook } from './support/drive.js';
import { InboundEvents } from '../src/webhooks/inbound-events.js';
import { sweep, SWEEP_JOB } from '../jobs/sweep.job.js';

const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }] }
permissions:
  contain: [security-oncall]
  restore: [security-oncall]
consequences:
  - id: critical-violation
    when: { pactViolated: critical }
    then: { contain: true }
`;
const SECRET = 'armalo_inbound_secret_0123456789';
let app: TestApp;

const it = appTest({ policy: POLICY, env: { ARMALO_WEBHOOK_SECRET: SECRET }, appOptions: { relayPollMs: 200 } });
it.beforeAll(({ app: started }) => {
  app = started;
});

const webhook = (event: unknown) => signedWebhook(app, SECRET, event);
const violation = (id: string, agentId: string) => ({ id, type: 'pact.violated', createdAt: new Date().toISOString(), data: { agentId, pactId: 'no-pii', severity: 'critical', evidenceUrl: 'https://evals.example.com/v' } });
const decision = (agentId: string, action: string) => decisionOf(app, agentId, action, { amount: 1 });

describe('a webhook for an agent that is not registered yet', () => {
  it('is held (a resend is held again, not a duplicate) and applied with its consequence once the agent is registered', async () => {
    const first = await webhook(violation('early-1', 'late-bot'));
    expect(first).toMatchObject({ status: 202, body: { status: 'held', id: 'early-1' } });
    // The sender retries while the agent is still unknown: the id is not spent.
    const resend = await webhook(violation('early-1', 'late-bot'));
    expect(resend).toMatchObject({ status: 202, body: { status: 'held' } });
    expect(await app.db.selectFrom('inbound_events').select('id').where('id', '=', 'early-1').execute()).toHaveLength(0);

    expect((await app.call('PUT', '/v1/agents/late-bot', sampleAgent)).status).toBe(201);

    // Applied right after the registration committed: audited, counted against the score...
    const audit = (await app.call('GET', '/v1/audit?agentId=late-bot&limit=20')).body.entries.map((e: any) => e.action);
    expect(audit).toContain('trust.pact_violated');
    const score = (await app.call('GET', '/v1/agents/late-bot/score')).body;
    expect(score.score).not.toBeNull();
    // ...and the policy's consequence follows: a critical violation contains the agent.
    await waitFor(async () => (await app.call('GET', '/v1/agents/late-bot')).body.status === 'contained', 10_000, 'the containment');
    // The worker commits the containment, then its view applies it: wait for that, not for the row alone.
    await waitFor(async () => (await decision('late-bot', 'crm:write')).decision === 'deny', 2000, 'the view to deny');

    // Now the id is spent: another resend is a duplicate and changes nothing more.
    const after = await webhook(violation('early-1', 'late-bot'));
    expect(after).toMatchObject({ status: 200, body: { status: 'duplicate' } });
    const violations = await app.db.selectFrom('audit_log').select('seq').where('subject', '=', 'late-bot').where('action', '=', 'trust.pact_violated').execute();
    expect(violations).toHaveLength(1);
  });

  it('a held event that arrives again after the registration is applied once, not twice', async () => {
    expect((await webhook(violation('early-2', 'later-bot'))).body.status).toBe('held');
    expect((await app.call('PUT', '/v1/agents/later-bot', { ...sampleAgent, riskTier: 'low' })).status).toBe(201);
    expect((await webhook(violation('early-2', 'later-bot'))).body.status).toBe('duplicate');
    const violations = await app.db.selectFrom('audit_log').select('seq').where('subject', '=', 'later-bot').where('action', '=', 'trust.pact_violated').execute();
    expect(violations).toHaveLength(1);
  });
});

describe('a held event whose agent is registered but whose registration hook could not apply it', () => {
  // As if the hook's apply had failed (Postgres dropped the connection): the agent is registered,
  // the event is still held, and no registration or resend is coming to apply it.
  async function holdForRegistered(id: string, agentId: string) {
    expect((await app.call('PUT', `/v1/agents/${agentId}`, sampleAgent)).status).toBe(201);
    const event = violation(id, agentId);
    await app.db.insertInto('held_events').values({ id, type: event.type, agent_id: agentId, event: JSON.stringify(event), received_at: new Date() }).execute();
  }
  const violationsOf = async (agentId: string) => (await app.db.selectFrom('audit_log').select('seq').where('subject', '=', agentId).where('action', '=', 'trust.pact_violated').execute()).length;
  const appliedAt = async (id: string) => (await app.db.selectFrom('held_events').select('applied_at').where('id', '=', id).executeTakeFirstOrThrow()).applied_at;

  it('is applied by the sweep, exactly once however often the sweep runs', async () => {
    await holdForRegistered('missed-1', 'missed-bot');
    expect(await violationsOf('missed-bot')).toBe(0);

    const clock = { now: () => new Date() };
    const inbound = new InboundEvents({ db: app.db, clock, trust: app.trust, logger: app.logger });
    const runSweep = () => sweep({ db: app.db, clock, agents: app.agents, inbound });
    await runSweep();

    // Applied: audited, its id spent, and the policy's consequence follows (a critical violation contains).
    expect(await violationsOf('missed-bot')).toBe(1);
    expect(await appliedAt('missed-1')).not.toBeNull();
    await waitFor(async () => (await app.call('GET', '/v1/agents/missed-bot')).body.status === 'contained', 10_000, 'the containment');

    // Idempotent: the next sweeps (every 30 s) and a late resend change nothing more.
    expect((await runSweep()).held).toBe(0);
    await runSweep();
    expect((await webhook(violation('missed-1', 'missed-bot'))).body.status).toBe('duplicate');
    expect(await violationsOf('missed-bot')).toBe(1);
  });

  it('is applied by the worker\'s scheduled sweep job', async () => {
    await holdForRegistered('missed-2', 'missed-too-bot');
    await app.queues.timers.add(SWEEP_JOB, {}, { jobId: `sweep-now-${Date.now()}` });
    await waitFor(async () => (await appliedAt('missed-2')) !== null, 10_000, 'the sweep job to apply the held event');
    expect(await violationsOf('missed-too-bot')).toBe(1);
  });
});
