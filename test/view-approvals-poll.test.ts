import pg from 'pg';
import { afterAll, describe, expect } from 'vitest';
import { waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';

/**
 * The view's poll finds approval requests whose change was never published (a lost message), by
 * the transaction that wrote them rather than by reading every open request each time: written
 * here with plain SQL, which publishes nothing.
 */
const POLICY = `
roles:
  risk-owner: { members: [{ slack: U0RISK }] }
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [risk-owner]
`;
const BIG = { amount: 20_000 };
const agent = { name: 'Poll bot', owner: 'owner@example.com', riskTier: 'low', grants: [{ scope: 'payments:transfer' }] };

let app: TestApp;
let sqlClient: pg.Client;
let databaseUrl: string;

// A fast heartbeat: the view polls every 300 ms.
const it = appTest({ policy: POLICY, env: { ARMALO_ROLE: 'web', ARMALO_VIEW_STALE_AFTER_MS: '900' } });
it.beforeAll(async ({ app: started, database }) => {
  app = started;
  databaseUrl = database.url;
  sqlClient = new pg.Client({ connectionString: databaseUrl });
  await sqlClient.connect();
});

afterAll(async () => {
  await sqlClient?.end();
});

/** A request for `agentId`, pending, created through the API (published as usual). */
async function pendingRequest(agentId: string): Promise<string> {
  const created = await app.call('POST', '/v1/approval-requests', { agentId, action: 'payments:transfer', context: BIG, justification: 'payout' });
  expect(created.status).toBe(201);
  await waitFor(() => app.view!.approvalsFor(agentId).some((a) => a.id === created.body.id), 5000, 'the pending request in the view');
  return created.body.id as string;
}

const approveSql = (id: string) => ({ text: `update approval_requests set status = 'approved', decided_at = now() where id = $1`, values: [id] });
const statusInView = (agentId: string, id: string) => app.view!.approvalsFor(agentId).find((a) => a.id === id)?.status;

describe('the view polls approval writes it was not told about', () => {
  it('an approval whose publish was lost reaches the view, and the next decision uses it', async () => {
    await app.call('PUT', '/v1/agents/lost-pub-bot', agent);
    const id = await pendingRequest('lost-pub-bot');
    expect((await decisionOf(app, 'lost-pub-bot', 'payments:transfer', BIG)).decision).toBe('approval_required');
    await sqlClient.query(approveSql(id));
    await waitFor(() => statusInView('lost-pub-bot', id) === 'approved', 5000, 'the approval through the poll');
    const answer = await decisionOf(app, 'lost-pub-bot', 'payments:transfer', BIG);
    expect(answer.decision).toBe('allow');
    expect(answer.approvalRequestId).toBe(id);
  });

  it('a write that committed after later writes the poll already saw is still found (transaction ids, not commit order)', async () => {
    await app.call('PUT', '/v1/agents/early-tx-bot', agent);
    await app.call('PUT', '/v1/agents/late-tx-bot', agent);
    const early = await pendingRequest('early-tx-bot');
    const late = await pendingRequest('late-tx-bot');

    // The early transaction writes first (it has the lower transaction id) and stays open...
    const slow = new pg.Client({ connectionString: databaseUrl });
    await slow.connect();
    try {
      await slow.query('begin');
      await slow.query(approveSql(early));
      // ...while a later one commits, and a poll sees it.
      await sqlClient.query(approveSql(late));
      await waitFor(() => statusInView('late-tx-bot', late) === 'approved', 5000, 'the later write through the poll');
      expect(statusInView('early-tx-bot', early)).toBe('pending');
      // Now the early one commits: the polls after it find it although they already saw a later one.
      await slow.query('commit');
      await waitFor(() => statusInView('early-tx-bot', early) === 'approved', 5000, 'the early write through the poll');
    } finally {
      await slow.end();
    }
    expect((await decisionOf(app, 'early-tx-bot', 'payments:transfer', BIG)).decision).toBe('allow');
  });

  it('a request ended without a publish leaves the view, and a grant window that passed is dropped', async () => {
    await app.call('PUT', '/v1/agents/ended-bot', agent);
    const denied = await pendingRequest('ended-bot');
    await sqlClient.query({ text: `update approval_requests set status = 'denied', decided_at = now() where id = $1`, values: [denied] });
    await waitFor(() => statusInView('ended-bot', denied) === undefined, 5000, 'the denied request to leave the view');

    const windowed = await pendingRequest('ended-bot');
    await sqlClient.query({ text: `update approval_requests set status = 'approved', decided_at = now(), grant_until = now() + interval '5 seconds' where id = $1`, values: [windowed] });
    await waitFor(() => statusInView('ended-bot', windowed) === 'approved', 5000, 'the windowed approval');
    expect((await decisionOf(app, 'ended-bot', 'payments:transfer', BIG)).decision).toBe('allow');
    // Nothing writes the row when its window passes: the view drops it by itself.
    await waitFor(() => statusInView('ended-bot', windowed) === undefined, 15_000, 'the passed window to leave the view');
    expect((await decisionOf(app, 'ended-bot', 'payments:transfer', BIG)).decision).toBe('approval_required');
  });
});
