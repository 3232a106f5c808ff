import { describe, expect } from 'vitest';
import { type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';

/** Issue 10 item 8: an approval allows only what the approvers saw, and ends with a containment. */
const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }] }
  risk-owner: { members: [{ slack: U0RISK }] }
permissions:
  contain: [security-oncall]
  revoke: [security-oncall]
  restore: [security-oncall]
routing:
  - id: payments
    match: { action: "payments:*" }
    approvers: [risk-owner]
  - id: mail-out
    match: { action: "mail:send" }
    approvers: [risk-owner]
    grantFor: 1h
`;

let app: TestApp;
const agent = { name: 'Binding bot', owner: 'owner@example.com', riskTier: 'low', grants: [{ scope: 'payments:transfer' }, { scope: 'mail:send' }] };
const risk = { actor: 'slack:U0RISK', platform: 'slack' as const, slack: 'U0RISK', emails: [] as string[] };

const it = appTest({ policy: POLICY, appOptions: { relayPollMs: 200 } });
it.beforeAll(({ app: started }) => {
  app = started;
});

async function approved(agentId: string, action: string, context: Record<string, unknown>): Promise<string> {
  const created = await app.call('POST', '/v1/approval-requests', { agentId, action, context, justification: 'binding test' });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  const { view } = await app.approvals.decide(id, risk, 'approve', null);
  expect(view.status).toBe('approved');
  return id;
}

const decide = (agentId: string, action: string, context: Record<string, unknown>) => decisionOf(app, agentId, action, context);

describe('an approval is bound to its whole context', () => {
  it('an approval for 500 USD to partner.example does not allow 500 EUR to attacker.example, nor more than 500', async () => {
    await app.call('PUT', '/v1/agents/bind-bot', agent);
    const usd500 = { amount: 500, currency: 'USD', recipientDomain: 'partner.example' };
    const id = await approved('bind-bot', 'payments:transfer', usd500);

    const attack = await decide('bind-bot', 'payments:transfer', { amount: 500, currency: 'EUR', recipientDomain: 'attacker.example' });
    expect(attack.decision).toBe('approval_required');
    expect(attack.approvalRequestId).toBeUndefined();
    expect((await decide('bind-bot', 'payments:transfer', { ...usd500, recipientDomain: 'attacker.example' })).decision).toBe('approval_required');
    expect((await decide('bind-bot', 'payments:transfer', { ...usd500, amount: 500.01 })).decision).toBe('approval_required');
    expect((await decide('bind-bot', 'payments:transfer', { currency: 'USD', recipientDomain: 'partner.example' })).decision).toBe('approval_required');
    expect((await decide('bind-bot', 'payments:transfer', { ...usd500, memo: 'and one more thing' })).decision).toBe('approval_required');
    // None of those used it up: the approved transfer (or a smaller one) is still allowed, once.
    expect(await decide('bind-bot', 'payments:transfer', { ...usd500, amount: 450 })).toMatchObject({ decision: 'allow', approvalRequestId: id });
    expect((await decide('bind-bot', 'payments:transfer', usd500)).decision).toBe('approval_required');
  });

  it('an approval without an amount does not allow any amount', async () => {
    const id = await approved('bind-bot', 'payments:transfer', { currency: 'USD', recipientDomain: 'partner.example' });
    expect((await decide('bind-bot', 'payments:transfer', { amount: 1_000_000, currency: 'USD', recipientDomain: 'partner.example' })).decision).toBe('approval_required');
    expect(await decide('bind-bot', 'payments:transfer', { currency: 'USD', recipientDomain: 'partner.example' })).toMatchObject({ decision: 'allow', approvalRequestId: id });
  });

  it('a pending request is named only to a decision it would cover', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'bind-bot', action: 'payments:transfer', context: { amount: 70, currency: 'USD' }, justification: 'pending' });
    expect((await decide('bind-bot', 'payments:transfer', { amount: 70, currency: 'USD' })).reasons[0]).toContain(`request ${created.body.id} is pending`);
    expect((await decide('bind-bot', 'payments:transfer', { amount: 70, currency: 'EUR' })).reasons[0]).not.toContain(created.body.id);
    await app.call('POST', `/v1/approval-requests/${created.body.id}/cancel`);
  });
});

describe('approved but unused approvals end with a containment', () => {
  it('contain + restore: the unused approvals are cancelled ("agent contained") and no longer allow', async () => {
    await app.call('PUT', '/v1/agents/held-bot', agent);
    const oneShot = await approved('held-bot', 'payments:transfer', { amount: 900, currency: 'USD' });
    const window = await approved('held-bot', 'mail:send', { to: 'customer@example.org' });
    const used = await approved('held-bot', 'payments:transfer', { amount: 5, currency: 'EUR' });
    expect((await decide('held-bot', 'payments:transfer', { amount: 5, currency: 'EUR' })).approvalRequestId).toBe(used);
    const cardsBefore = await cardJobs(oneShot);

    const contained = await app.call('POST', '/v1/agents/held-bot/actions', { action: 'contain', reason: 'suspicious transfers' });
    expect(contained.status).toBe(201);
    for (const id of [oneShot, window]) {
      const view = (await app.call('GET', `/v1/approval-requests/${id}`)).body;
      expect(view.status).toBe('cancelled');
      expect(view.finalReason).toContain('agent contained');
    }
    // The approval that was already used stays as it was (history is not rewritten).
    expect((await app.call('GET', `/v1/approval-requests/${used}`)).body.status).toBe('approved');
    // Its approval cards are updated, as for any other cancellation.
    expect(await cardJobs(oneShot)).toBeGreaterThan(cardsBefore);

    const restored = await app.call('POST', '/v1/agents/held-bot/actions', { action: 'restore', reason: 'all clear' });
    expect(restored.status).toBe(201);
    expect((await decide('held-bot', 'payments:transfer', { amount: 900, currency: 'USD' })).decision).toBe('approval_required');
    expect((await decide('held-bot', 'mail:send', { to: 'customer@example.org' })).decision).toBe('approval_required');
  });
});

async function cardJobs(requestId: string): Promise<number> {
  const rows = await app.db.selectFrom('outbox').select('payload').where('job_name', '=', 'approval-cards').execute();
  return rows.filter((r) => (r.payload as { requestId?: string }).requestId === requestId).length;
}
