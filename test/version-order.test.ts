import { describe, expect } from 'vitest';
import pg from 'pg';
import { sql } from 'kysely';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import type { TestDatabase } from './support/database.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';
import { APPROVALS_TEST_POLICY } from './support/approvals-policy.js';
import { AgentService } from '../src/agents/agents.service.js';
import { systemClock } from '../src/core/clock.js';

// Permission versions must follow commit order: a replica polls for "versions above the highest I
// hold", so a change that commits with a lower version than one the replica already saw would be
// skipped for ever if its publish was lost.
let database: TestDatabase;
let writer: TestApp;
let replica: TestApp;
const agent = { ...sampleAgent, owner: 'owner@example.com', grants: [{ scope: 'crm:write', constraints: { minTier: 'silver' } }, { scope: 'mail:send' }] };

const decision = (app: TestApp, agentId: string, action: string) => decisionOf(app, agentId, action);

async function versionOf(app: TestApp, agentId: string): Promise<bigint> {
  const res = await app.call('GET', `/v1/agents/${agentId}`);
  expect(res.status).toBe(200);
  return BigInt((res.body as { version: string }).version);
}

// The writer polls often; the replica (web only) polls rarely, so only a publish reaches it quickly.
const it = appTest({ policy: APPROVALS_TEST_POLICY, env: { ARMALO_VIEW_STALE_AFTER_MS: '3000' }, appOptions: { heartbeatMs: 200 } });
it.beforeAll(async ({ app, startApp, database: fixtureDatabase }) => {
  database = fixtureDatabase;
  writer = app;
  replica = await startApp({ env: { ARMALO_ROLE: 'web', ARMALO_VIEW_STALE_AFTER_MS: '60000' }, appOptions: { heartbeatMs: 20_000 } });
});

describe('permission versions in commit order', () => {
  it('a change that commits after a later-started one is still picked up by the poll when its publish is lost', async () => {
    for (const id of ['order-x', 'order-y']) expect((await writer.call('PUT', `/v1/agents/${id}`, agent)).status).toBe(201);
    // A pending request for X: containing X cancels it, so that transaction must update this row.
    const request = await writer.call('POST', '/v1/approval-requests', { agentId: 'order-x', action: 'mail:send', justification: 'newsletter' });
    expect(request.status).toBe(201);
    await waitFor(async () => (await decision(writer, 'order-x', 'mail:send')).decision !== 'deny', 3000, 'the writer to see X');

    // Someone holds the request's row: the containment of X stalls in the middle of its transaction.
    const blocker = new pg.Client({ connectionString: database.url });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('select id from approval_requests where id = $1 for update', [request.body.id]);
      // X's containment publishes nothing (as if Redis dropped it): only a poll can bring it.
      const silent = new AgentService({ db: writer.db, clock: systemClock, publisher: { publishChanged: async () => undefined }, approvals: writer.approvals });
      const containX = silent.act('order-x', { kind: 'contain', reason: 'version order', actor: 'api:test' });
      containX.catch(() => undefined);
      await waitFor(async () => {
        const { rows } = await sql<{ n: number }>`
          select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock' and query ilike 'update "approval_requests"%'`.execute(writer.db);
        return rows[0]!.n > 0;
      }, 5000, 'the containment of X to wait for the request row');

      // Meanwhile Y is contained and committed; the writer publishes it and the writer's view takes it.
      const containY = await writer.call('POST', '/v1/agents/order-y/actions', { action: 'contain', reason: 'version order' });
      expect(containY.status).toBe(201);
      const yVersion = await versionOf(writer, 'order-y');
      await waitFor(() => writer.view!.version >= yVersion, 3000, 'the writer view to hold Y');
      await waitFor(async () => (await decision(writer, 'order-y', 'mail:send')).reasonCodes[0] === 'agent_contained', 3000, 'Y contained');

      await blocker.query('rollback');
      const x = await containX;
      // X committed after Y, so its version is above Y's: versions are drawn in commit order.
      expect(BigInt(x.version!)).toBeGreaterThan(yVersion);
    } finally {
      await blocker.end();
    }
    // No publish for X: the writer's view learns it from its poll, and denies.
    await waitFor(async () => (await decision(writer, 'order-x', 'mail:send')).reasonCodes[0] === 'agent_contained', 3000, 'the poll to bring X containment');
    expect(writer.view!.version).toBeGreaterThanOrEqual(await versionOf(writer, 'order-x'));
  });

  it('a new score or evaluation bumps the agent version and is published: another replica reacts at once', async () => {
    expect((await writer.call('PUT', '/v1/agents/tier-bot', agent)).status).toBe(201);
    await waitFor(async () => (await decision(replica, 'tier-bot', 'crm:write')).reasonCodes[0] === 'tier_below_minimum', 3000, 'the replica to see the unscored agent');
    const before = await versionOf(writer, 'tier-bot');

    const res = await writer.call('POST', '/v1/agents/tier-bot/evaluations', { id: 'tier-e1', dimension: 'safety', passed: true, observedAt: new Date().toISOString(), source: 'redteam' });
    expect(res.status).toBe(201);
    expect(['silver', 'gold', 'platinum']).toContain(res.body.score.tier);
    const after = await versionOf(writer, 'tier-bot');
    expect(after).toBeGreaterThan(before);
    // The replica polls every 20 s: allowing within 2 s means the change was pushed to it.
    await waitFor(async () => (await decision(replica, 'tier-bot', 'crm:write')).decision === 'allow', 2000, 'the replica to see the new tier');

    // Evidence without a score change bumps the version too (routing reads the newest evidence time).
    const again = await writer.call('POST', '/v1/agents/tier-bot/evaluations', { id: 'tier-e2', dimension: 'safety', passed: true, observedAt: new Date().toISOString(), source: 'redteam' });
    expect(again.status).toBe(201);
    const latest = await versionOf(writer, 'tier-bot');
    expect(latest).toBeGreaterThan(after);
    await waitFor(() => replica.view!.version >= latest, 2000, 'the replica view to reach the new version');
  });
});
