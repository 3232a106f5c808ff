import { describe, expect } from 'vitest';
import { sql } from 'kysely';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { inTransaction, waitForLockWait } from './support/locks.js';
import { decisionOf } from './support/drive.js';
import { APPROVALS_TEST_POLICY } from './support/approvals-policy.js';
import type { WebhookReceiver } from './support/webhook-receiver.js';
import { verifySignature } from '../src/webhooks/signature.js';

let app: TestApp;
let receiver: WebhookReceiver;
const SECRET = 'whsec_approvals_0123456789';
const agent = { ...sampleAgent, owner: 'owner@example.com', grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 100_000 } }, { scope: 'mail:send' }, { scope: 'crm:write' }] };

const it = appTest({ policy: APPROVALS_TEST_POLICY, events: { secret: SECRET }, env: { ARMALO_CALLBACK_HOSTS: '127.0.0.1' }, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, receiver: fakeReceiver }) => {
  app = started;
  receiver = fakeReceiver;
  await app.call('PUT', '/v1/agents/pay-bot', agent);
});

const slackUser = (id: string) => ({ actor: `slack:${id}`, platform: 'slack' as const, slack: id, emails: [] as string[] });
const decide = (action: string, context: Record<string, unknown> = {}) => decisionOf(app, 'pay-bot', action, context);

describe('approval requests over REST', () => {
  it('a routed action answers approval_required; a small one is allowed by its grant', async () => {
    expect((await decide('payments:transfer', { amount: 500 })).decision).toBe('allow');
    const big = await decide('payments:transfer', { amount: 50_000 });
    expect(big.decision).toBe('approval_required');
    expect(big.reasons[0]).toContain('big-payments');
    expect(big.approvalRequestId).toBeUndefined();
  });

  it('creates a request with its route, idempotently, and approves it with a quorum of distinct people', async () => {
    const body = { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 50_000 }, justification: 'pay the reinsurer', idempotencyKey: 'inv-77', callbackUrl: receiver.url() };
    const created = await app.call('POST', '/v1/approval-requests', body);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: 'pending', route: { ruleId: 'big-payments', quorum: 2 } });
    expect(created.body.route.requirements[0].approvers.sort()).toEqual(['ciso@example.com', 'risk2@example.com', 'slack:U0RISK']);
    const again = await app.call('POST', '/v1/approval-requests', body);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(created.body.id);
    const id = created.body.id as string;
    expect((await decide('payments:transfer', { amount: 50_000 })).approvalRequestId).toBe(id);

    // Someone not on the route, the owner, a second click: refused.
    await expect(app.approvals.decide(id, slackUser('U0ONCALL1'), 'approve', null)).rejects.toThrow(/not on this request's route/);
    await expect(app.approvals.decide(id, slackUser('U0OWNER'), 'approve', null)).rejects.toThrow(/you own this agent/);
    const first = await app.approvals.decide(id, slackUser('U0RISK'), 'approve', null);
    expect(first.final).toBe(false);
    await expect(app.approvals.decide(id, slackUser('U0RISK'), 'approve', null)).rejects.toThrow(/already decided/);
    const second = await app.approvals.decide(id, { actor: 'slack:U0CISO', platform: 'slack', slack: 'U0CISO', emails: ['ciso@example.com'] }, 'approve', null);
    expect(second.final).toBe(true);
    expect(second.view.status).toBe('approved');

    // Allowed once, for at most the approved amount.
    expect((await decide('payments:transfer', { amount: 60_000 })).decision).toBe('approval_required');
    const allowed = await decide('payments:transfer', { amount: 50_000 });
    expect(allowed).toMatchObject({ decision: 'allow', approvalRequestId: id });
    expect((await decide('payments:transfer', { amount: 50_000 })).decision).toBe('approval_required');

    // The agent hears about it at its callbackUrl, signed.
    // (The same receiver also gets the event stream; the callback is the one carrying the request.)
    const isCallback = (r: { body: string }) => JSON.parse(r.body).type === 'approval.approved' && JSON.parse(r.body).data.request !== undefined;
    await waitFor(() => receiver.requests.some(isCallback), 5000, 'the callback');
    const cb = receiver.requests.find(isCallback)!;
    expect(verifySignature(SECRET, cb.body, String(cb.headers['x-armalo-signature']), Math.floor(Date.now() / 1000)).ok).toBe(true);
    expect(JSON.parse(cb.body).data.request).toMatchObject({ id, status: 'approved' });
  });

  it('the long-poll returns as soon as the request ends', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'mail:send', justification: 'newsletter' });
    const id = created.body.id as string;
    const started = Date.now();
    const poll = app.call('GET', `/v1/approval-requests/${id}?wait=20`);
    await new Promise((r) => setTimeout(r, 300));
    await app.approvals.decide(id, slackUser('U0ONCALL2'), 'deny', 'not during the freeze');
    const res = await poll;
    expect(Date.now() - started).toBeLessThan(3000);
    expect(res.body).toMatchObject({ status: 'denied', decisions: [{ by: 'slack:U0ONCALL2', decision: 'deny', reason: 'not during the freeze' }] });
    expect((await decide('mail:send')).decision).toBe('approval_required');
  });

  it('a denial needs a reason; grantFor keeps an approval valid for its window', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'mail:send', justification: 'weekly digest' });
    const id = created.body.id as string;
    await expect(app.approvals.decide(id, slackUser('U0ONCALL1'), 'deny', ' ')).rejects.toThrow(/needs a reason/);
    await app.approvals.decide(id, slackUser('U0ONCALL1'), 'approve', null);
    expect((await decide('mail:send')).decision).toBe('allow');
    expect((await decide('mail:send')).decision).toBe('allow');
  });

  it('the requester can cancel; others cannot', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 20_000 }, justification: 'x' });
    const id = created.body.id as string;
    const stranger = await app.call('POST', `/v1/approval-requests/${id}/cancel`, undefined, { token: 'tok_automation_0123456789abcdef' });
    expect(stranger.status).toBe(403);
    const mine = (await app.db.selectFrom('outbox').select(['id', 'payload']).where('job_name', '=', 'approval-timer').execute()).filter((r) => (r.payload as any).requestId === id);
    expect(mine).toHaveLength(3);
    await waitFor(async () => (await Promise.all(mine.map((r) => app.queues.timers.getJob(r.id)))).every((j) => j !== undefined), 3000, 'the timers to be scheduled');
    const own = await app.call('POST', `/v1/approval-requests/${id}/cancel`);
    expect(own.status).toBe(200);
    expect(own.body.status).toBe('cancelled');
    // Its reminder, escalation and expiry jobs are removed, not left to fire.
    await waitFor(async () => (await Promise.all(mine.map((r) => app.queues.timers.getJob(r.id)))).every((j) => j === undefined), 5000, 'the timers to be removed');
  });

  it('containing the agent cancels its pending requests, and a contained agent is denied even with an approval', async () => {
    await app.call('PUT', '/v1/agents/hold-bot', agent);
    const pending = await app.call('POST', '/v1/approval-requests', { agentId: 'hold-bot', action: 'payments:transfer', context: { amount: 30_000 }, justification: 'x' });
    const approvedReq = await app.call('POST', '/v1/approval-requests', { agentId: 'hold-bot', action: 'mail:send', justification: 'y' });
    await app.approvals.decide(approvedReq.body.id, slackUser('U0ONCALL1'), 'approve', null);
    const dry = await app.call('POST', '/v1/agents/hold-bot/actions', { action: 'contain', reason: 'check', dryRun: true });
    expect(dry.body.pendingApprovalsCancelled).toEqual([pending.body.id]);
    const contained = await app.call('POST', '/v1/agents/hold-bot/actions', { action: 'contain', reason: 'incident' });
    expect(contained.body.pendingApprovalsCancelled).toEqual([pending.body.id]);
    expect((await app.call('GET', `/v1/approval-requests/${pending.body.id}`)).body.status).toBe('cancelled');
    const denied = (await app.call('POST', '/v1/decisions', { agentId: 'hold-bot', action: 'mail:send' })).body;
    expect(denied.decision).toBe('deny');
    const refused = await app.call('POST', '/v1/approval-requests', { agentId: 'hold-bot', action: 'mail:send', justification: 'z' });
    expect(refused.status).toBe(409);
  });

  it('a fleet contain waiting for a request an approver holds does not hold the audit head meanwhile (no deadlock with the click)', async () => {
    const fleetAgent = { ...agent, grants: [...agent.grants, { scope: 'vault:read' }] };
    const ids = ['vault-a', 'vault-b'];
    const requests: string[] = [];
    for (const id of ids) {
      expect((await app.call('PUT', `/v1/agents/${id}`, fleetAgent)).status).toBe(201);
      const created = await app.call('POST', '/v1/approval-requests', { agentId: id, action: 'mail:send', justification: `before the fleet contain (${id})` });
      expect(created.status).toBe(201);
      requests.push(created.body.id);
    }
    // An approver's click on vault-b's request holds its row, and will next audit itself (the head).
    await inTransaction(app.db, async (click) => {
      await sql`select id from approval_requests where id = ${requests[1]} for update`.execute(click);
      const fleet = app.call('POST', '/v1/actions', { selector: { scope: 'vault:*' }, action: 'contain', reason: 'vault credentials leaked' });
      await waitForLockWait(app.db, 'the fleet contain to wait for the request row');
      // The head is free while the fleet waits: the click can audit itself and finish.
      await sql`select seq from audit_head where id = 1 for update nowait`.execute(click);
      await sql`commit`.execute(click);
      const answer = await fleet;
      expect(answer.status).toBe(201);
      expect(answer.body.count).toBe(2);
    });
    // The answer came with the hold; the agents' records (which cancel the requests) follow.
    await app.fleet.settled();
    for (const id of requests) expect((await app.call('GET', `/v1/approval-requests/${id}`)).body.status).toBe('cancelled');
    const reasons = await app.db.selectFrom('approval_requests').select(['agent_id', 'final_reason']).where('id', 'in', requests).orderBy('agent_id').execute();
    expect(reasons.map((r) => r.final_reason)).toEqual(ids.map((id) => `agent contained: cancelled while pending, agent ${id} was contained or revoked by api:platform`));
  });

  it('a decommissioned agent gets no approval request: 409, nothing recorded', async () => {
    await app.call('PUT', '/v1/agents/retired-bot', agent);
    expect((await app.call('DELETE', '/v1/agents/retired-bot')).status).toBe(200);
    const before = await app.db.selectFrom('audit_head').select('seq').executeTakeFirstOrThrow();
    const answer = await app.call('POST', '/v1/approval-requests', { agentId: 'retired-bot', action: 'mail:send', justification: 'after retirement' });
    expect(answer.status).toBe(409);
    expect(answer.body.error.message).toContain('retired-bot was decommissioned');
    expect(await app.db.selectFrom('approval_requests').select('id').where('agent_id', '=', 'retired-bot').execute()).toEqual([]);
    expect((await app.db.selectFrom('audit_head').select('seq').executeTakeFirstOrThrow()).seq).toBe(before.seq);
  });

  it('a request made while a contain holds the agent waits for it, then is refused: no request stays pending on a contained agent', async () => {
    await app.call('PUT', '/v1/agents/race-bot', agent);
    // A contain in flight holds the agent's row until it commits; this connection plays it, so the
    // request can be sent in the middle of it.
    await inTransaction(app.db, async (contain) => {
      await sql`select id from agents where id = 'race-bot' for update`.execute(contain);
      const request = app.call('POST', '/v1/approval-requests', { agentId: 'race-bot', action: 'mail:send', justification: 'sent during the contain' });
      await waitForLockWait(app.db, 'the request to wait for the agent row');
      await sql`update agents set status = 'contained' where id = 'race-bot'`.execute(contain);
      await sql`commit`.execute(contain);
      const answer = await request;
      expect(answer.status).toBe(409);
      expect(answer.body.error.message).toContain('race-bot is contained');
    });
    const rows = await app.db.selectFrom('approval_requests').select('id').where('agent_id', '=', 'race-bot').execute();
    expect(rows).toEqual([]);
  });

  it('reminds, escalates and expires on time; expiry is expired, not denied', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 40_000 }, justification: 'slow' });
    const id = created.body.id as string;
    await waitFor(async () => (await app.call('GET', `/v1/approval-requests/${id}`)).body.route.escalated === true, 8000, 'escalation');
    // After escalation on-call people may fill the main requirement.
    await app.approvals.decide(id, slackUser('U0ONCALL1'), 'approve', null);
    const res = await app.call('GET', `/v1/approval-requests/${id}?wait=10`);
    expect(res.body.status).toBe('expired');
    expect(res.body.finalReason).toContain('expired');
    const audit = await app.call('GET', '/v1/audit?agentId=pay-bot&limit=20');
    expect(audit.body.entries.map((e: any) => e.action)).toEqual(expect.arrayContaining(['approval.escalated', 'approval.expired']));
  });

  it('refuses requests no rule covers, unknown agents and malformed bodies, posting nothing', async () => {
    const before = (await app.call('GET', '/v1/audit?limit=1')).body.entries;
    const uncovered = await app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'crm:write', justification: 'x' });
    expect(uncovered.status).toBe(400);
    expect(uncovered.body.error.message).toContain('no routing rule');
    expect((await app.call('POST', '/v1/approval-requests', { agentId: 'ghost-bot', action: 'mail:send', justification: 'x' })).status).toBe(404);
    for (const bad of [{}, { agentId: 'pay-bot', action: 'mail:*', justification: 'x' }, { agentId: 'pay-bot', action: 'mail:send' }, { agentId: 'pay-bot', action: 'mail:send', justification: 'x', callbackUrl: 'ftp://x' }, { agentId: 'pay-bot', action: 'mail:send', justification: 'x', extra: 1 }]) {
      const res = await app.call('POST', '/v1/approval-requests', bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
    }
    expect((await app.call('GET', '/v1/approval-requests/not-a-uuid')).status).toBe(400);
    expect((await app.call('GET', '/v1/approval-requests/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await app.call('GET', '/v1/audit?limit=1')).body.entries).toEqual(before);
  });
});
