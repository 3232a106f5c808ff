import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf, signedWebhook } from './support/drive.js';
import type { FakeSlack } from './support/fake-slack.js';
import { firedConsequences } from '../src/domain/consequences.js';
import { parsePolicyText } from '../src/policy/load-policy.js';

const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }, { slack: U0ONCALL2 }] }
permissions:
  contain: [security-oncall]
  restore: [security-oncall]
consequences:
  - id: critical-violation
    when: { pactViolated: critical }
    then: { contain: true }
  - id: low-tier
    when: { tierBelow: silver }
    then: { narrow: ["payments:*"] }
  - id: big-drop
    when: { scoreDropOver: 300 }
    then: { contain: true }
channels:
  incidents: { slack: C0INCIDENTS }
`;
const SECRET = 'armalo_inbound_secret_0123456789';
let app: TestApp;
let slack: FakeSlack;

const it = appTest({ policy: POLICY, slack: true, env: { ARMALO_WEBHOOK_SECRET: SECRET }, appOptions: { relayPollMs: 200 } });
it.beforeAll(({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
});

const webhook = async (event: unknown) => (await signedWebhook(app, SECRET, event)).body;
const decision = (agentId: string, action: string) => decisionOf(app, agentId, action, { amount: 1 });
const violation = (id: string, agentId: string) => ({ id, type: 'pact.violated', createdAt: new Date().toISOString(), data: { agentId, pactId: 'no-pii', severity: 'critical', evidenceUrl: 'https://evals.example.com/v' } });

describe('consequences act on their own', () => {
  it('a critical pact violation contains the agent, with a notice naming the rule; the same event again does nothing more', async () => {
    await app.call('PUT', '/v1/agents/leaky-bot', sampleAgent);
    expect((await webhook(violation('v-1', 'leaky-bot'))).status).toBe('applied');
    await waitFor(async () => (await decision('leaky-bot', 'crm:write')).decision === 'deny', 5000, 'the containment');
    expect((await decision('leaky-bot', 'mail:send')).decision).toBe('allow'); // kept in containment
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => JSON.stringify(p.args.blocks).includes('policy:critical-violation')), 5000, 'the incident notice');
    // The low-tier narrow may land first (the violation also lowers the score), so the contain is
    // either the notice itself or a step in its thread; either way it names the rule and the restore.
    const notice = JSON.stringify(slack.posts('C0INCIDENTS').find((p) => JSON.stringify(p.args.blocks).includes('policy:critical-violation'))!.args.blocks);
    expect(notice).toContain('pact no-pii violated (critical)');
    expect(notice).toContain('/armalo restore leaky-bot');

    expect((await webhook(violation('v-1', 'leaky-bot'))).status).toBe('duplicate');
    expect((await webhook(violation('v-2', 'leaky-bot'))).status).toBe('applied');
    await new Promise((r) => setTimeout(r, 1500));
    const actions = await app.db.selectFrom('agent_actions').select(['kind', 'actor']).where('agent_id', '=', 'leaky-bot').execute();
    // The violation also counts as a failed check, so the first computed score is 0 (bronze): the
    // low-tier rule narrows payments as well. The second violation changes neither.
    expect(actions.map((a) => `${a.kind} ${a.actor}`).sort()).toEqual(['contain policy:critical-violation', 'narrow policy:low-tier']);
  });

  it('a tier drop below silver narrows payments; a drop of more than 300 points contains', async () => {
    await app.call('PUT', '/v1/agents/tier-bot', sampleAgent);
    const score = (id: string, value: number) => webhook({ id, type: 'score.changed', createdAt: new Date().toISOString(), data: { agentId: 'tier-bot', score: value } });
    await score('s-1', 700);
    await score('s-2', 480); // silver → bronze, a drop of 220
    await waitFor(async () => (await decision('tier-bot', 'payments:refund')).decision === 'deny', 5000, 'the narrow');
    expect((await decision('tier-bot', 'crm:write')).decision).toBe('allow');
    await score('s-3', 100); // a drop of 380; still bronze, so low-tier does not fire again
    await waitFor(async () => (await decision('tier-bot', 'crm:write')).decision === 'deny', 5000, 'the containment');
    const actions = await app.db.selectFrom('agent_actions').select(['kind', 'actor']).where('agent_id', '=', 'tier-bot').orderBy('created_at').execute();
    expect(actions).toEqual([
      { kind: 'narrow', actor: 'policy:low-tier' },
      { kind: 'contain', actor: 'policy:big-drop' },
    ]);
  });
});

describe('which rules fire (pure)', () => {
  const rules = parsePolicyText(POLICY).consequences;
  it('fires on the event a rule names, and only then', () => {
    const fired = (t: Parameters<typeof firedConsequences>[1]) => firedConsequences(rules, t, { tier: 'gold', evidenceAgeMs: 0 }).map((f) => f.ruleId);
    expect(fired({ kind: 'violation', eventId: 'e', pactId: 'p', severity: 'critical' })).toEqual(['critical-violation']);
    expect(fired({ kind: 'violation', eventId: 'e', pactId: 'p', severity: 'high' })).toEqual([]);
    expect(fired({ kind: 'score', eventId: 'e', score: 400, tier: 'bronze', previousScore: 600, previousTier: 'silver' })).toEqual(['low-tier']);
    expect(fired({ kind: 'score', eventId: 'e', score: 300, tier: 'bronze', previousScore: 400, previousTier: 'bronze' })).toEqual([]);
    expect(fired({ kind: 'score', eventId: 'e', score: 100, tier: 'bronze', previousScore: 900, previousTier: 'platinum' })).toEqual(['low-tier', 'big-drop']);
    expect(firedConsequences(rules, { kind: 'violation', eventId: 'x', pactId: 'p', severity: 'critical' }, { tier: null, evidenceAgeMs: null })[0]!.key).toBe('consequence:critical-violation:x');
  });
});
