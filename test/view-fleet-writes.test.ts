import { describe, expect } from 'vitest';
import { sampleAgent, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';
import { APPROVALS_TEST_POLICY } from './support/approvals-policy.js';
import { loadAgents } from '../src/agents/agents.repository.js';
import type { Agent } from '../src/domain/agent.js';

// A fleet action's own replica stores its agents as the action wrote them (PermissionView.publishWritten)
// instead of reading thousands of agents back. What it stores must be exactly what a read from
// Postgres gives, field for field: a difference would be a wrong decision on this replica. The poll
// is slowed down so that only the write path itself can bring the change in.
const it = appTest({ policy: APPROVALS_TEST_POLICY, env: { ARMALO_VIEW_STALE_AFTER_MS: '60000' }, appOptions: { heartbeatMs: 20_000 } });
let app: TestApp;

it.beforeAll(({ app: started }) => {
  app = started;
});

const IDS = ['fleetview-a', 'fleetview-b', 'fleetview-c'];
const SELECTOR = { scope: 'payments:*', owner: 'fleetview@example.com' };
const agent = { ...sampleAgent, owner: 'fleetview@example.com', grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 100_000 } }, { scope: 'mail:send' }, { scope: 'crm:write' }] };

/** The view's entry and a fresh read from Postgres, for every agent. */
async function viewAndDatabase(): Promise<{ view: (Agent | undefined)[]; database: Agent[] }> {
  const database = await loadAgents(app.db, { ids: IDS });
  database.sort((x, y) => (x.id < y.id ? -1 : 1));
  return { view: IDS.map((id) => app.view!.get(id)), database };
}

describe('the writer view after a fleet action', () => {
  it('holds every agent of a fleet contain and of its restore exactly as Postgres has them, approvals included', async () => {
    for (const id of IDS) expect((await app.call('PUT', `/v1/agents/${id}`, agent)).status).toBe(201);
    // Trust data the fleet action does not read: the view must keep it.
    const evaluation = { id: 'fleetview-eval', dimension: 'safety', passed: true, observedAt: new Date(Date.now() - 3_600_000).toISOString(), source: 'redteam' };
    expect((await app.call('POST', '/v1/agents/fleetview-a/evaluations', evaluation)).status).toBe(201);
    // An action already in force: the contain stacks on it.
    expect((await app.call('POST', '/v1/agents/fleetview-b/actions', { action: 'narrow', scopes: ['crm:write'], reason: 'before the fleet' })).status).toBe(201);
    // A pending approval request: the contain cancels it.
    const request = await app.call('POST', '/v1/approval-requests', { agentId: 'fleetview-c', action: 'mail:send', justification: 'newsletter' });
    expect(request.status).toBe(201);
    expect(app.view!.approvalsFor('fleetview-c').map((a) => a.id)).toContain(request.body.id);
    const before = app.view!.get('fleetview-a')!;
    expect(before.trustScore).not.toBeNull();

    const contained = await app.call('POST', '/v1/actions', { selector: SELECTOR, action: 'contain', reason: 'vendor compromised', ttl: '2h' });
    expect(contained.status).toBe(201);
    expect(contained.body.count).toBe(3);
    expect(app.view!.version).toBeGreaterThanOrEqual(BigInt(contained.body.version));
    // Held at once: every agent reads as contained before its own records are written.
    expect(IDS.map((id) => app.view!.get(id)!.status)).toEqual(['contained', 'contained', 'contained']);
    await app.fleet.settled();
    expect(app.view!.heldCount).toBe(0);
    const afterContain = await viewAndDatabase();
    expect(afterContain.view).toEqual(afterContain.database);
    expect(afterContain.view.map((a) => a!.status)).toEqual(['contained', 'contained', 'contained']);
    expect(afterContain.view[0]!.trustScore).toBe(before.trustScore);
    expect(afterContain.view[1]!.activeActions.map((a) => a.kind)).toEqual(['narrow', 'contain']);
    expect(app.view!.approvalsFor('fleetview-c').map((a) => a.id)).not.toContain(request.body.id);
    for (const id of IDS) expect((await decisionOf(app, id, 'payments:transfer', { amount: 10 })).decision).toBe('deny');

    const restored = await app.call('POST', '/v1/actions', { selector: SELECTOR, action: 'restore', reason: 'rotated the vendor key' });
    expect(restored.status).toBe(201);
    expect(restored.body.count).toBe(3);
    expect(app.view!.version).toBeGreaterThanOrEqual(BigInt(restored.body.version));
    const afterRestore = await viewAndDatabase();
    expect(afterRestore.view).toEqual(afterRestore.database);
    // Only the fleet's own contain is lifted: the narrow made before it stays.
    expect(afterRestore.view.map((a) => a!.status)).toEqual(['active', 'narrowed', 'active']);
    expect((await decisionOf(app, 'fleetview-a', 'payments:transfer', { amount: 10 })).decision).toBe('allow');
    expect((await decisionOf(app, 'fleetview-b', 'crm:write')).decision).toBe('deny');
  });
});
