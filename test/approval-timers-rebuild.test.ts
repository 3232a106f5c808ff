import { Redis } from 'ioredis';
import { describe, expect } from 'vitest';
import { waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { REDIS_URL } from './support/database.js';
import { sweep } from '../jobs/sweep.job.js';
import { approvalTimerJobId } from '../src/approvals/approvals.service.js';

/** Issue 10 item 17: after Redis loses its data, the sweep rebuilds approval timers from Postgres. */
const POLICY = `
roles:
  risk-owner: { members: [{ slack: U0RISK }] }
  ciso: { members: [{ slack: U0CISO }] }
routing:
  - id: slow-payments
    match: { action: "payments:*" }
    approvers: [risk-owner]
    remindAfter: 2s
    escalateAfter: 3s
    escalateTo: [ciso]
    expireAfter: 5s
  - id: long-mail
    match: { action: "mail:send" }
    approvers: [risk-owner]
    remindAfter: 1s
    expireAfter: 1h
`;

let app: TestApp;
let prefix: string;
const agent = { name: 'Timer bot', owner: 'owner@example.com', riskTier: 'low', grants: [{ scope: 'payments:transfer' }, { scope: 'mail:send' }] };

const it = appTest({ policy: POLICY, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, prefix: prefixFixture }) => {
  prefix = prefixFixture;
  app = started;
  await app.call('PUT', '/v1/agents/timer-bot', agent);
});

/** What a Redis without persistence keeps after a restart: nothing. Only this test's timers queue. */
async function loseTimerQueue(): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:timers:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

const runSweep = () => sweep({ db: app.db, clock: { now: () => new Date() }, agents: app.agents, approvals: app.approvals, queues: app.queues });
const jobsOf = (id: string, kinds: ('remind' | 'escalate' | 'expire')[]) => Promise.all(kinds.map((k) => app.queues.timers.getJob(approvalTimerJobId(id, k))));
const reminders = async (id: string) =>
  (await app.db.selectFrom('outbox').select('payload').where('job_name', '=', 'approval-cards').execute()).filter((r) => (r.payload as { requestId?: string; remind?: boolean }).requestId === id && (r.payload as { remind?: boolean }).remind).length;

describe('lost approval timers are rebuilt by the sweep', () => {
  it('reminds, escalates and expires a pending request whose timers Redis lost', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'timer-bot', action: 'payments:transfer', context: { amount: 10 }, justification: 'lost timers' });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    await waitFor(async () => (await jobsOf(id, ['remind', 'escalate', 'expire'])).every((j) => j !== undefined), 5000, 'the timers to be scheduled');

    await loseTimerQueue();
    expect((await jobsOf(id, ['remind', 'escalate', 'expire'])).every((j) => j === undefined)).toBe(true);

    const swept = await runSweep();
    expect(swept.timers).toBeGreaterThanOrEqual(3);
    expect((await jobsOf(id, ['remind', 'escalate', 'expire'])).every((j) => j !== undefined)).toBe(true);
    // Idempotent: a second sweep (every 30 s) adds nothing new.
    const counts = await app.queues.timers.getJobCounts('delayed', 'wait', 'active', 'completed');
    await runSweep();
    expect(await app.queues.timers.getJobCounts('delayed', 'wait', 'active', 'completed')).toEqual(counts);

    await waitFor(async () => (await reminders(id)) === 1, 8000, 'the reminder');
    await waitFor(async () => (await app.call('GET', `/v1/approval-requests/${id}`)).body.route.escalated === true, 8000, 'the escalation');
    await waitFor(async () => (await app.call('GET', `/v1/approval-requests/${id}`)).body.status === 'expired', 10_000, 'the expiry');
  });

  it('a reminder that went out is not sent again when its timer is rebuilt', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'timer-bot', action: 'mail:send', context: { to: 'x@example.org' }, justification: 'remind once' });
    const id = created.body.id as string;
    await waitFor(async () => (await reminders(id)) === 1, 8000, 'the reminder');
    await waitFor(async () => (await app.db.selectFrom('approval_requests').select('reminded_at').where('id', '=', id).executeTakeFirstOrThrow()).reminded_at !== null, 5000, 'reminded_at');
    await loseTimerQueue();
    await runSweep();
    // Only the expiry is rebuilt (an hour away); the reminder is not offered again.
    const [remind, expire] = await jobsOf(id, ['remind', 'expire']);
    expect(remind).toBeUndefined();
    expect(expire && (await expire.isDelayed())).toBe(true);
    // And the timer itself refuses to remind twice, whatever re-runs it.
    expect(await app.approvals.timer(id, 'remind')).toBe('already_reminded');
    expect(await reminders(id)).toBe(1);
  });

  it('a request already past its expiry is expired at once', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'timer-bot', action: 'mail:send', context: { to: 'late@example.org' }, justification: 'overdue' });
    const id = created.body.id as string;
    await loseTimerQueue();
    await app.db.updateTable('approval_requests').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', id).execute();
    expect((await runSweep()).expired).toBeGreaterThanOrEqual(1);
    expect((await app.call('GET', `/v1/approval-requests/${id}`)).body.status).toBe('expired');
  });
});
