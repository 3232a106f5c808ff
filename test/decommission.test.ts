import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import type { FakeSlack } from './support/fake-slack.js';
import { APPROVALS_TEST_POLICY } from './support/approvals-policy.js';

// DELETE /v1/agents/{id}: an agent retired for good, with its history kept and its id reserved.
const ADMIN = 'tok_decom_admin_0123456789abcdef';
const PLATFORM = 'tok_decom_platform_0123456789abcdef';
const AGENT_TOKEN = 'tok_decom_agent_0123456789abcdef';

let app: TestApp;
let slack: FakeSlack;

const it = appTest({
  policy: APPROVALS_TEST_POLICY,
  slack: { signed: false },
  env: { ARMALO_API_TOKENS: `ops:${ADMIN}:admin,svc:${PLATFORM}:platform,bot:${AGENT_TOKEN}:agent=retiring-bot` },
  appOptions: { relayPollMs: 200 },
});
it.beforeAll(({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
});

const as = (token: string) => ({ token });

describe('decommissioning an agent', () => {
  it('only an admin token may decommission; bad input and unknown agents change nothing', async () => {
    expect((await app.call('PUT', '/v1/agents/keep-bot', sampleAgent, as(ADMIN))).status).toBe(201);
    const platform = await app.call('DELETE', '/v1/agents/keep-bot', undefined, as(PLATFORM));
    expect(platform.status).toBe(403);
    const agent = await app.call('DELETE', '/v1/agents/retiring-bot', undefined, as(AGENT_TOKEN));
    expect(agent.status).toBe(403);
    const unknown = await app.call('DELETE', '/v1/agents/no-such-bot', undefined, as(ADMIN));
    expect(unknown.status).toBe(404);
    const badQuery = await app.call('DELETE', '/v1/agents/keep-bot?because=x', undefined, as(ADMIN));
    expect(badQuery.status).toBe(400);
    expect(badQuery.body.error.message).toMatch(/because/);
    const emptyReason = await app.call('DELETE', '/v1/agents/keep-bot?reason=%20', undefined, as(ADMIN));
    expect(emptyReason.status).toBe(400);
    const still = await app.call('GET', '/v1/agents/keep-bot', undefined, as(ADMIN));
    expect(still.body.status).toBe('active');
    expect(still.body.grants).toHaveLength(sampleAgent.grants.length);
  });

  it('removes grants, cancels approvals, closes the incident, denies decisions, keeps history, reserves the id', async () => {
    expect((await app.call('PUT', '/v1/agents/retiring-bot', sampleAgent, as(ADMIN))).status).toBe(201);
    // A pending approval request and an incident (a narrow opens one) before the agent is retired.
    const requested = await app.call('POST', '/v1/approval-requests', { agentId: 'retiring-bot', action: 'payments:transfer', context: { amount: 50_000 }, justification: 'quarterly payout' }, as(PLATFORM));
    expect(requested.status).toBe(201);
    const requestId = requested.body.id as string;
    const narrowed = await app.call('POST', '/v1/agents/retiring-bot/actions', { action: 'narrow', scopes: ['crm:*'], reason: 'odd CRM writes' }, as(ADMIN));
    expect(narrowed.status).toBe(201);
    const incidentId = narrowed.body.incidentId as string;

    const res = await app.call('DELETE', '/v1/agents/retiring-bot?reason=replaced%20by%20payments-bot-v2', undefined, as(ADMIN));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      agentId: 'retiring-bot',
      status: 'decommissioned',
      statusBefore: 'narrowed',
      decommissionedBy: 'api:ops',
      reason: 'replaced by payments-bot-v2',
      approvalRequestsCancelled: [requestId],
      incidentClosed: incidentId,
      replayed: false,
    });
    expect(res.body.grantsRemoved.map((g: { scope: string }) => g.scope).sort()).toEqual(sampleAgent.grants.map((g) => g.scope).sort());
    const version = res.body.version as string;
    expect(version).toMatch(/^\d+$/);

    // Decisions deny at once, with their own reason code (asked at the version the delete committed).
    const decision = await app.call('POST', '/v1/decisions', { agentId: 'retiring-bot', action: 'payments:refund', atLeastVersion: version }, as(PLATFORM));
    expect(decision.body.decision).toBe('deny');
    expect(decision.body.reasonCodes).toEqual(['agent_decommissioned']);
    expect(decision.body.reasons[0]).toContain('replaced by payments-bot-v2');

    const shown = await app.call('GET', '/v1/agents/retiring-bot', undefined, as(PLATFORM));
    expect(shown.status).toBe(200);
    expect(shown.body.status).toBe('decommissioned');
    expect(shown.body.grants).toEqual([]);
    expect(shown.body.activeActions).toEqual([]);
    expect(shown.body.decommissioned).toMatchObject({ by: 'api:ops', reason: 'replaced by payments-bot-v2' });

    const approval = await app.call('GET', `/v1/approval-requests/${requestId}`, undefined, as(PLATFORM));
    expect(approval.body.status).toBe('cancelled');

    // The id stays reserved, and there is nothing left to act on.
    const again = await app.call('PUT', '/v1/agents/retiring-bot', sampleAgent, as(ADMIN));
    expect(again.status).toBe(409);
    expect(again.body.error.message).toMatch(/decommissioned.*reserved/);
    const contain = await app.call('POST', '/v1/agents/retiring-bot/actions', { action: 'contain', reason: 'too late' }, as(ADMIN));
    expect(contain.status).toBe(409);

    // History is kept: the audit log has the whole story, ending with the decommissioning.
    const audit = await app.call('GET', '/v1/audit?agentId=retiring-bot', undefined, as(ADMIN));
    const actions = (audit.body.entries as { action: string }[]).map((e) => e.action);
    expect(actions[0]).toBe('agent.decommissioned');
    expect(actions).toContain('agent.narrow');
    expect(actions).toContain('agent.registered');
    const verify = await app.call('GET', '/v1/audit/verify', undefined, as(ADMIN));
    expect(verify.body.ok).toBe(true);

    // A second delete changes nothing and answers the first one's result.
    const replay = await app.call('DELETE', '/v1/agents/retiring-bot', undefined, as(ADMIN));
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ replayed: true, decommissionedAt: res.body.decommissionedAt, reason: 'replaced by payments-bot-v2' });
    const auditAfter = await app.call('GET', '/v1/audit?agentId=retiring-bot', undefined, as(ADMIN));
    expect((auditAfter.body.entries as unknown[]).length).toBe(actions.length);
  });

  it('posts one notice in the incidents channel', async () => {
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => JSON.stringify(p.args.blocks).includes('was *decommissioned*')), 10_000, 'the decommission notice');
    const notices = slack.posts('C0INCIDENTS').filter((p) => JSON.stringify(p.args.blocks).includes('was *decommissioned*'));
    expect(notices).toHaveLength(1);
    expect(JSON.stringify(notices[0]!.args.blocks)).toContain('retiring-bot');
    expect(JSON.stringify(notices[0]!.args.blocks)).toContain('replaced by payments-bot-v2');
  });
});
