import { describe, expect } from 'vitest';
import { sql } from 'kysely';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { inTransaction, waitForLockWait } from './support/locks.js';
import { signedWebhook } from './support/drive.js';

let app: TestApp;
const SECRET = 'armalo_inbound_secret_0123456789';
const day = 86_400_000;

const it = appTest({ env: { ARMALO_ROLE: 'web', ARMALO_WEBHOOK_SECRET: SECRET } });
it.beforeAll(async ({ app: started }) => {
  app = started;
  await app.call('PUT', '/v1/agents/trust-bot', sampleAgent);
});

const webhook = (event: unknown, options: { secret?: string; t?: number; raw?: string } = {}) => signedWebhook(app, options.secret ?? SECRET, event, options);

describe('pacts, evaluations and the Score over REST', () => {
  it('an agent with no data says so plainly', async () => {
    const res = await app.call('GET', '/v1/agents/trust-bot/score');
    expect(res.body).toMatchObject({ score: null, tier: null, freshness: 'none', trend: [], pacts: [] });
  });

  it('stores pacts and computes the score from evaluations, idempotently by evaluation id', async () => {
    const pact = { id: 'no-pii', title: 'Never sends PII outside the company', clauses: ['no SSNs in outbound mail'], severity: 'critical', verification: 'weekly red-team eval' };
    expect((await app.call('POST', '/v1/agents/trust-bot/pacts', pact)).status).toBe(201);
    expect((await app.call('POST', '/v1/agents/trust-bot/pacts', { ...pact, title: 'Never leaks PII' })).status).toBe(200);
    expect((await app.call('GET', '/v1/agents/trust-bot/pacts')).body.pacts).toMatchObject([{ id: 'no-pii', title: 'Never leaks PII' }]);

    const at = (d: number) => new Date(Date.now() - d * day).toISOString();
    const evals = [
      { id: 'ev-1', pactId: 'no-pii', dimension: 'safety', passed: true, observedAt: at(2), source: 'redteam' },
      { id: 'ev-2', pactId: 'no-pii', dimension: 'safety', passed: false, observedAt: at(1), source: 'redteam' },
      { id: 'ev-3', dimension: 'accuracy', score: 0.9, observedAt: at(1), source: 'benchmark', evidenceUrl: 'https://evals.example.com/3' },
    ];
    for (const e of evals) expect((await app.call('POST', '/v1/agents/trust-bot/evaluations', e)).status).toBe(201);
    // safety 0.5, accuracy 0.9 → 0.7 → 700, silver
    const again = await app.call('POST', '/v1/agents/trust-bot/evaluations', evals[0]);
    expect(again.status).toBe(200);
    expect(again.body.created).toBe(false);
    const score = (await app.call('GET', '/v1/agents/trust-bot/score')).body;
    expect(score).toMatchObject({ score: 700, tier: 'silver', source: 'computed', freshness: 'fresh' });
    expect(score.trend.map((t: any) => t.score)).toEqual([1000, 500, 700]);
    expect(score.pacts).toMatchObject([{ id: 'no-pii', freshness: 'fresh' }]);
    expect((await app.call('GET', '/v1/agents/trust-bot')).body).toMatchObject({ score: 700, tier: 'silver' });
    for (const bad of [{ ...evals[0], id: 'ev-x', passed: undefined }, { ...evals[0], id: 'ev-y', score: 2, passed: undefined }, { ...evals[0], id: 'ev-z', dimension: 'Safety!' }]) {
      expect((await app.call('POST', '/v1/agents/trust-bot/evaluations', bad)).status).toBe(400);
    }
  });
});

describe('signed Armalo webhooks', () => {
  const tierChanged = (id: string) => ({ id, type: 'score.tier_changed', createdAt: new Date().toISOString(), data: { agentId: 'trust-bot', tier: 'bronze', score: 420 } });

  it('applies a signed event once; a replay is acknowledged and ignored', async () => {
    const first = await webhook(tierChanged('evt-1'));
    expect(first).toMatchObject({ status: 200, body: { status: 'applied' } });
    expect((await app.call('GET', '/v1/agents/trust-bot/score')).body).toMatchObject({ score: 420, tier: 'bronze', source: 'external' });
    const replay = await webhook(tierChanged('evt-1'));
    expect(replay).toMatchObject({ status: 200, body: { status: 'duplicate' } });
    const audit = (await app.call('GET', '/v1/audit?agentId=trust-bot&limit=50')).body.entries.filter((e: any) => e.actor === 'armalo:score.tier_changed');
    expect(audit).toHaveLength(1);
  });

  it('refuses a bad signature, an old timestamp and a malformed body, changing nothing', async () => {
    const before = (await app.call('GET', '/v1/audit?limit=1')).body.entries;
    expect((await webhook(tierChanged('evt-2'), { secret: 'not-the-secret-0123456789' })).status).toBe(401);
    const old = await webhook(tierChanged('evt-3'), { t: Math.floor(Date.now() / 1000) - 6 * 60 });
    expect(old.status).toBe(401);
    expect(old.body.error.message).toContain('window');
    expect((await webhook(undefined, { raw: '{"id":' })).status).toBe(400);
    const malformed = await webhook({ id: 'evt-4', type: 'score.changed', createdAt: new Date().toISOString(), data: { agentId: 'trust-bot', score: 5000 } });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.message).toContain('score');
    expect((await webhook({ id: 'evt-5', type: 'agent.exploded', createdAt: new Date().toISOString(), data: { agentId: 'trust-bot' } })).status).toBe(400);
    const unsigned = await fetch(`${app.url}/webhooks/armalo`, { method: 'POST', body: JSON.stringify(tierChanged('evt-6')) });
    expect(unsigned.status).toBe(401);
    expect((await app.call('GET', '/v1/audit?limit=1')).body.entries).toEqual(before);
  });

  it('records a pact violation and an evaluation; ignores unknown agents', async () => {
    const v = await webhook({ id: 'evt-7', type: 'pact.violated', createdAt: new Date().toISOString(), data: { agentId: 'trust-bot', pactId: 'no-pii', severity: 'critical', evidenceUrl: 'https://evals.example.com/v7' } });
    expect(v.body.status).toBe('applied');
    const audit = (await app.call('GET', '/v1/audit?agentId=trust-bot&limit=5')).body.entries.map((e: any) => e.action);
    expect(audit).toContain('trust.pact_violated');
    const e = await webhook({ id: 'evt-8', type: 'eval.completed', createdAt: new Date().toISOString(), data: { agentId: 'trust-bot', evaluationId: 'ev-armalo-1', dimension: 'safety', passed: true, observedAt: new Date().toISOString() } });
    expect(e.body.status).toBe('applied');
    const unknown = await webhook({ id: 'evt-9', type: 'pact.violated', createdAt: new Date().toISOString(), data: { agentId: 'ghost-bot', pactId: 'x', severity: 'low' } });
    expect(unknown).toMatchObject({ status: 202, body: { status: 'held' } });
  });
});

describe('a violation arriving while a contain holds the agent', () => {
  it('waits for the contain instead of deadlocking with it: the contain gets the audit head, then the violation applies', async () => {
    await app.call('PUT', '/v1/agents/race-trust-bot', sampleAgent);
    await inTransaction(app.db, async (contain) => {
      // A contain in flight: the agent's row first, the audit head last, held to the commit.
      await sql`select id from agents where id = 'race-trust-bot' for update`.execute(contain);
      const delivery = webhook({ id: 'evt-race-1', type: 'pact.violated', createdAt: new Date().toISOString(), data: { agentId: 'race-trust-bot', pactId: 'no-pii', severity: 'high' } });
      await waitForLockWait(app.db, 'the violation to wait for the agent');
      await sql`set local lock_timeout = '5s'`.execute(contain);
      await sql`select seq from audit_head where id = 1 for update`.execute(contain);
      await sql`commit`.execute(contain);
      const answer = await delivery;
      expect(answer.body.status).toBe('applied');
    });
    const audit = (await app.call('GET', '/v1/audit?agentId=race-trust-bot&limit=10')).body.entries.map((e: { action: string }) => e.action);
    expect(audit).toContain('trust.pact_violated');
  });
});

describe('a grant with minTier', () => {
  it('denies below the tier (and before any score), allows at or above it, and follows tier changes', async () => {
    await app.call('PUT', '/v1/agents/tiered-bot', { ...sampleAgent, grants: [{ scope: 'payments:transfer', constraints: { minTier: 'gold' } }] });
    const decide = async () => (await app.call('POST', '/v1/decisions', { agentId: 'tiered-bot', action: 'payments:transfer' })).body;
    const unscored = await decide();
    expect(unscored).toMatchObject({ decision: 'deny', reasonCodes: ['tier_below_minimum'] });
    expect(unscored.reasons[0]).toContain('not scored yet');
    const score = (id: string, value: number) => webhook({ id, type: 'score.changed', createdAt: new Date().toISOString(), data: { agentId: 'tiered-bot', score: value } });
    await score('tier-1', 800);
    await waitFor(async () => (await decide()).decision === 'allow', 3000, 'gold to allow');
    await score('tier-2', 600);
    await waitFor(async () => (await decide()).decision === 'deny', 3000, 'silver to deny');
    expect((await decide()).reasons[0]).toContain('the agent is silver');
  });
});

describe('trust settings from the policy', () => {
  it('tier thresholds and freshness thresholds come from the policy', async () => {
    const { TrustService } = await import('../src/trust/trust.service.js');
    const { parsePolicyText } = await import('../src/policy/load-policy.js');
    const { systemClock } = await import('../src/core/clock.js');
    const settings = parsePolicyText('trust:\n  tiers: { silver: 300, gold: 600, platinum: 950 }\n  freshness: { ageingAfter: 1d, staleAfter: 2d }\n  weights: { safety: 3 }\n').trust;
    expect(settings.weights).toEqual({ safety: 3 });
    const trust = new TrustService({ db: app.db, clock: systemClock, settings });
    expect([trust.tierOf(299), trust.tierOf(650), trust.tierOf(949), trust.tierOf(950)]).toEqual(['bronze', 'gold', 'gold', 'platinum']);
    // trust-bot's newest evidence is from today: fresh under a 1-day ageing threshold.
    expect((await trust.scoreOf('trust-bot')).freshness).toBe('fresh');
  });
});
