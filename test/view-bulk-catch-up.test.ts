import { isDeepStrictEqual } from 'node:util';
import { describe, expect } from 'vitest';
import { loadAgents, loadAllAgents } from '../src/agents/agents.repository.js';
import { BULK_CATCH_UP_VERSIONS } from '../src/permissions/permission-view.js';
import type { Agent } from '../src/domain/agent.js';
import { waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';
import { FLEET_POLICY, fleetId, seedFleet, seedOddAgents } from './support/fleet.js';

/**
 * A fleet action changes thousands of agents at once. A replica catches up such a change with one
 * streamed read (like its first load) instead of reading each agent as JSON; what it holds must be
 * exactly what the per-agent read gives.
 */
const COUNT = 700;
const it = appTest({ policy: FLEET_POLICY });
let odd: string[] = [];
it.beforeAll(async ({ app }) => {
  await seedFleet(app.db, COUNT);
  odd = await seedOddAgents(app.db);
});

describe('a replica catching up a fleet action', () => {
  it('reads only the agents above a version, each exactly as the per-agent read gives it', async ({ app }) => {
    const above = BigInt(COUNT - 250);
    const streamed: Agent[] = [];
    await loadAllAgents(app.db, (page) => streamed.push(...page), { versionAbove: above });
    const single = await loadAgents(app.db, { versionAbove: above });
    // The last 250 seeded agents and the awkward ones (seeded after, so above too), nothing below.
    expect(streamed.map((a) => a.id).sort()).toEqual(single.map((a) => a.id).sort());
    expect(streamed).toHaveLength(250 + odd.length);
    expect(streamed.some((a) => a.id === fleetId(COUNT - 250))).toBe(false);
    const byId = new Map(single.map((a) => [a.id, a]));
    for (const agent of streamed) expect(agent, agent.id).toEqual(byId.get(agent.id));
    await expect(loadAllAgents(app.db, () => undefined, { versionAbove: 1 as unknown as bigint })).rejects.toThrow(/bigint/);
  });

  it('a fleet contain of hundreds of agents reaches another replica in one streamed read, agent for agent', async ({ app, startApp }) => {
    // The replica's heartbeat poll (every third of ARMALO_VIEW_STALE_AFTER_MS) could bring the change
    // before the message does, by the per-agent read: slowed down here, the message is what brings it.
    const replica: TestApp = await startApp({ env: { ARMALO_ROLE: 'web', ARMALO_VIEW_STALE_AFTER_MS: '60000' } });
    // Both views hold the seeded fleet before the action (the poll brings it).
    await waitFor(() => app.view!.size >= COUNT && replica.view!.size >= COUNT, 20_000, 'both views to hold the seeded fleet');
    expect((await decisionOf(replica, fleetId(1), 'crm:read')).decision).toBe('allow');
    const before = replica.view!.bulkCatchUps;

    const res = await app.call('POST', '/v1/actions', { selector: { scope: 'payments:*' }, action: 'contain', reason: 'payments SDK compromised' });
    expect(res.status).toBe(201);
    // Every tenth seeded agent was contained already.
    expect(res.body.count).toBeGreaterThan(Number(BULK_CATCH_UP_VERSIONS));

    // The replica answers for the fleet's version only once it holds every change up to it.
    const answer = await replica.call('POST', '/v1/decisions', { agentId: fleetId(COUNT - 1), action: 'crm:read', atLeastVersion: res.body.version });
    expect(answer.body.decision).toBe('deny');
    expect(answer.body.reasonCodes).toContain('agent_contained');
    // That was the hold; each agent's own contain follows in the second commit, which the replica
    // reads in one streamed catch-up.
    await app.fleet.settled();
    const { hold_released_version: released } = await app.db.selectFrom('fleet_incidents').select('hold_released_version').where('id', '=', res.body.incidentId).executeTakeFirstOrThrow();
    await waitFor(() => replica.view!.version >= BigInt(released!), 20_000, 'the replica to read the records');
    expect(replica.view!.bulkCatchUps).toBeGreaterThan(before);
    expect(replica.view!.heldCount).toBe(0);

    // Agent for agent what Postgres holds (the per-agent read), for every agent of the fleet.
    const fromDb = await loadAgents(app.db, { ids: Array.from({ length: COUNT }, (_, i) => fleetId(i + 1)) });
    expect(fromDb).toHaveLength(COUNT);
    const wrong = fromDb.filter((agent) => !isDeepStrictEqual(replica.view!.get(agent.id), agent));
    if (wrong[0]) expect(replica.view!.get(wrong[0].id)).toEqual(wrong[0]);
    expect(wrong).toHaveLength(0);
    expect(fromDb.every((a) => a.status === 'contained')).toBe(true);
  }, 60_000);
});
