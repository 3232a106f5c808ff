import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import type { FakeSlack } from './support/fake-slack.js';

const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }, { slack: U0ONCALL2 }] }
  ciso: { members: [{ slack: U0CISO }] }
routing:
  - id: crm-writes
    match: { action: "crm:*" }
    approvers: [security-oncall]
  - id: stale-evidence
    match: { evidenceOlderThan: 30d }
    addApprovers: [ciso]
  - id: low-trust-mail
    match: { action: "mail:send", tierBelow: silver }
    approvers: [ciso]
  - id: refunds
    match: { action: "payments:refund" }
    approvers: [ciso]
    minTier: gold
`;
let app: TestApp;
let slack: FakeSlack;
const day = 86_400_000;

const it = appTest({ policy: POLICY, slack: true, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
  for (const id of ['stale-bot', 'fresh-bot']) await app.call('PUT', `/v1/agents/${id}`, sampleAgent);
  const evaluation = (id: string, ageDays: number, passed: boolean) => ({ id, dimension: 'safety', passed, observedAt: new Date(Date.now() - ageDays * day).toISOString(), source: 'redteam' });
  await app.call('POST', '/v1/agents/stale-bot/evaluations', evaluation('s-1', 40, true));
  await app.call('POST', '/v1/agents/fresh-bot/evaluations', evaluation('f-1', 1, true));
});

describe('trust-aware routing', () => {
  it('stale evidence adds the CISO to the route, and the card says why', async () => {
    const stale = await app.call('POST', '/v1/approval-requests', { agentId: 'stale-bot', action: 'crm:write', justification: 'bulk update' });
    expect(stale.body.route.matched).toEqual(['crm-writes', 'stale-evidence']);
    expect(stale.body.route.requirements.map((r: any) => r.ruleId)).toEqual(['crm-writes', 'stale-evidence']);
    expect(stale.body.route.why['stale-evidence']).toEqual(['evidence older than 30d']);
    expect(stale.body.route.trust).toMatchObject({ evidenceAgeDays: 40 });
    await waitFor(() => slack.posts('U0CISO').some((p) => JSON.stringify(p.args.blocks).includes(stale.body.id)), 5000, "the CISO's card");
    const card = JSON.stringify(slack.posts('U0CISO').find((p) => JSON.stringify(p.args.blocks).includes(stale.body.id))!.args.blocks);
    expect(card).toContain('Route tightened by');
    expect(card).toContain('stale-evidence');
    expect(card).toContain('evidence older than 30d');
    expect(card).toContain('newest evidence 40 days old');

    const fresh = await app.call('POST', '/v1/approval-requests', { agentId: 'fresh-bot', action: 'crm:write', justification: 'bulk update' });
    expect(fresh.body.route.matched).toEqual(['crm-writes']);
  });

  it('a tier below silver puts mail under the CISO; a good tier does not need approval', async () => {
    // fresh-bot scored 1000 (platinum): mail is allowed by its grant alone.
    expect((await app.call('POST', '/v1/decisions', { agentId: 'fresh-bot', action: 'mail:send' })).body.decision).toBe('allow');
    // stale-bot: one pass 40 days ago (996 after decay, platinum); two fresh failures make it 1 of 3 → 333, bronze.
    for (const [id, passed] of [['s-2', false], ['s-3', false]] as const) {
      await app.call('POST', '/v1/agents/stale-bot/evaluations', { id, dimension: 'safety', passed, observedAt: new Date().toISOString(), source: 'redteam' });
    }
    const d = (await app.call('POST', '/v1/decisions', { agentId: 'stale-bot', action: 'mail:send' })).body;
    expect(d.decision).toBe('approval_required');
    expect(d.reasons[0]).toContain('low-trust-mail');
    expect(d.reasons[0]).toContain('tier bronze below silver');
  });

  it('minTier on a routing rule: below it the rule requires approval, at or above it the grant alone allows', async () => {
    const low = (await app.call('POST', '/v1/decisions', { agentId: 'stale-bot', action: 'payments:refund' })).body;
    expect(low.decision).toBe('approval_required');
    expect(low.reasons[0]).toContain('refunds');
    expect(low.reasons[0]).toContain('tier bronze below gold');
    expect((await app.call('POST', '/v1/decisions', { agentId: 'fresh-bot', action: 'payments:refund' })).body.decision).toBe('allow');
  });
});
