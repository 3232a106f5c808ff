import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import type { FakeSlack } from './support/fake-slack.js';
import { appTest, type StartApp } from './support/fixture.js';
import { APPROVALS_TEST_POLICY } from './support/approvals-policy.js';

// The web role takes requests; workers come and go. Timers live in Redis as delayed jobs, so a
// worker restart in the middle loses none of them.
let slack: FakeSlack;
let startApp: StartApp;
let web: TestApp;
const agent = { ...sampleAgent, owner: 'owner@example.com', grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 100_000 } }, { scope: 'mail:send' }] };

/** One more worker on the same database and queues (stopped after the file, or by the test). */
const startWorker = (): Promise<TestApp> => startApp({ env: { ARMALO_ROLE: 'worker' }, appOptions: { relayPollMs: 200 } });

const it = appTest({ policy: APPROVALS_TEST_POLICY, slack: true });
it.beforeAll(async ({ startApp: start, slack: fakeSlack }) => {
  startApp = start;
  slack = fakeSlack;
  web = await startApp({ env: { ARMALO_ROLE: 'web' } });
  await web.call('PUT', '/v1/agents/pay-bot', agent);
});

const textOf = (x: any) => JSON.stringify(x?.blocks ?? x);
const postsFor = (id: string) => slack.posts().filter((p) => textOf(p.args).includes(id));

describe('approval timers across a worker restart', () => {
  it('one set of cards per idempotency key; reminder, escalation and expiry arrive on time although the worker restarted', async () => {
    const worker = await startWorker();
    const body = { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 50_000 }, justification: 'slow approvers', idempotencyKey: 'k-timers' };
    const first = await web.call('POST', '/v1/approval-requests', body);
    const second = await web.call('POST', '/v1/approval-requests', body);
    expect(second.body.id).toBe(first.body.id);
    const id = first.body.id as string;
    const created = Date.now();
    await waitFor(() => postsFor(id).length >= 2, 5000, 'the first cards');
    await worker.stop();
    await startWorker();
    await waitFor(() => postsFor(id).filter((p) => !p.args.thread_ts).length === 3, 5000, 'three cards (two approvers with a Slack id, and the channel)');

    // Reminder at 2 s: in the DM threads of those who have not decided.
    await waitFor(() => slack.posts().some((p) => p.args.thread_ts && textOf(p.args).includes('Reminder')), 8000, 'the reminder');
    expect(Date.now() - created).toBeGreaterThanOrEqual(1900);
    // Escalation at 3 s: on-call people get the card, which says it was escalated.
    await waitFor(() => postsFor(id).some((p) => p.args.channel === 'U0ONCALL1'), 8000, 'the escalated card');
    expect(textOf(postsFor(id).find((p) => p.args.channel === 'U0ONCALL1')!.args)).toContain('escalated');
    // Expiry at 6 s: expired, not denied, on every copy.
    const res = await web.call('GET', `/v1/approval-requests/${id}?wait=10`);
    expect(res.body.status).toBe('expired');
    await waitFor(() => slack.updates().filter((u) => textOf(u.args).includes('EXPIRED') && textOf(u.args).includes(id)).length >= 5, 5000, 'every copy to show EXPIRED');
    // One set of cards: never a second root copy for the same person.
    const roots = postsFor(id).filter((p) => !p.args.thread_ts).map((p) => p.args.channel).sort();
    expect(roots).toEqual(['C0APPROVALS', 'U0CISO', 'U0ONCALL1', 'U0ONCALL2', 'U0RISK']);
  });

  it('containing the agent cancels its pending requests and their cards say so', async () => {
    const created = await web.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'mail:send', justification: 'before the incident' });
    const id = created.body.id as string;
    await waitFor(() => postsFor(id).length >= 3, 5000, 'the cards');
    const contained = await web.call('POST', '/v1/agents/pay-bot/actions', { action: 'contain', reason: 'suspicious mail volume' });
    expect(contained.body.pendingApprovalsCancelled).toEqual([id]);
    await waitFor(() => slack.updates().filter((u) => textOf(u.args).includes('CANCELLED') && textOf(u.args).includes(id)).length >= 3, 5000, 'the cards to show CANCELLED');
    expect(textOf(slack.updates().filter((u) => textOf(u.args).includes(id)).at(-1)!.args)).toContain('contained');
  });

  it('a malformed request is refused and posts nothing', async () => {
    // (The containment above posts an incident notice, possibly late under load: count approval cards only.)
    const cards = () => slack.posts().filter((p) => p.args.channel !== 'C0INCIDENTS').length;
    const before = cards();
    const res = await web.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 'lots' }, justification: 'x' });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain('context.amount');
    await new Promise((r) => setTimeout(r, 800));
    expect(cards()).toBe(before);
  });
});
