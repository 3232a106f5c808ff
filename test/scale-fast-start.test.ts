import { createServer } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, onTestFinished } from 'vitest';
import { createDb } from '../src/db/database.js';
import { loadAgents, loadAllAgents } from '../src/agents/agents.repository.js';
import { LOAD_CHUNK_SIZE } from '../src/agents/load-all-agents.js';
import type { Agent } from '../src/domain/agent.js';
import { TOKEN } from './support/app.js';
import { appTest } from './support/fixture.js';
import { fleetId, seedFleet, seedOddAgents } from './support/fleet.js';

/**
 * Issue 17 item 4: the view's first load streams 70,000+ agents (COPY, one snapshot), reads each one
 * exactly as the per-agent read does, and /readyz answers only once it is complete.
 */

const COUNT = 70_500;
let oddIds: string[] = [];
// The file's database is seeded before any instance starts; the tests start the instances themselves.
const it = appTest({ env: { ARMALO_ROLE: 'web' } });
it.beforeAll(async ({ database }) => {
  const db = createDb(database.url, { max: 2 });
  try {
    await seedFleet(db, COUNT);
    oddIds = await seedOddAgents(db);
  } finally {
    await db.destroy();
  }
}, 60_000);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function decide(base: string, agentId: string, action: string) {
  const res = await fetch(`${base}/v1/decisions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ agentId, action }),
  });
  return ((await res.json()) as { decision: string }).decision;
}

/** What `seedFleet` wrote for its i-th agent, in the view's terms (grant ids aside, checked through the containment). */
function seeded(i: number) {
  const contained = i % 10 === 0;
  return {
    id: fleetId(i),
    name: `Fleet agent ${i}`,
    owner: `owner${i % 200}@example.com`,
    riskTier: ['low', 'medium', 'high'][i % 3],
    version: BigInt(i),
    status: contained ? 'contained' : 'active',
    grants: [
      ['crm:read', {}, false, null, 'api:seed'],
      ['mail:send', {}, true, null, 'api:seed'],
      ['payments:transfer', { maxAmount: 10000 }, false, null, 'api:seed'],
    ],
    actions: contained ? [['contain', ['crm:read', 'payments:transfer'], true]] : [],
    score: i % 5 === 0 ? ['gold', 720, true] : [null, null, false],
  };
}

function asSeeded(agent: Agent) {
  return {
    id: agent.id,
    name: agent.name,
    owner: agent.owner,
    riskTier: agent.riskTier,
    version: agent.version,
    status: agent.status,
    grants: agent.grants.map((g) => [g.scope, g.constraints, g.keepInContainment, g.expiresAt, g.grantedBy]),
    actions: agent.activeActions.map((a) => [
      a.kind,
      a.touched.map((t) => t.scope),
      // The touched grants are this agent's own.
      a.touched.every((t) => agent.grants.some((g) => g.id === t.grantId && g.scope === t.scope)),
    ]),
    score: [agent.trustTier, agent.trustScore, agent.newestEvidenceAt !== null],
  };
}

describe('fast start with a large fleet', () => {
  it('loads 70,500 agents and reports ready only with the whole view', async ({ startApp }) => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const starting = startApp({ env: { PORT: String(port) } });
    // Ask /readyz all along the start: the first 200 must come from a replica that holds every agent.
    let firstReady: { last: string; contained: string; active: string; odd: string } | undefined;
    let started = false;
    void starting.then(() => (started = true), () => (started = true));
    while (!firstReady) {
      const ready = await fetch(`${base}/readyz`).then((r) => r.status, () => 0);
      if (ready === 200) {
        firstReady = {
          last: await decide(base, fleetId(COUNT - 1), 'crm:read'),
          contained: await decide(base, fleetId(COUNT), 'crm:read'),
          active: await decide(base, fleetId(1), 'crm:read'),
          // Seeded after the fleet (the highest versions): narrowed on payments:*, crm:read kept.
          odd: await decide(base, 'odd-escapes', 'crm:read'),
        };
        break;
      }
      expect(ready === 0 || ready === 503).toBe(true);
      if (started && ready !== 200) {
        // Started (or failed) and still not ready: let the loop ask once more, then give up.
        const again = await fetch(`${base}/readyz`).then((r) => r.status, () => 0);
        if (again !== 200) throw new Error(`the app started but /readyz answers ${again}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const app = await starting;
    expect(firstReady).toEqual({ last: 'allow', contained: 'deny', active: 'allow', odd: 'allow' });
    expect(app.view?.size).toBe(COUNT + oddIds.length);
    expect(await decide(base, 'odd-escapes', 'payments:transfer')).toBe('deny');
  }, 60_000);

  it('reads every agent, grant, action in force, latest score and newest evidence, in id order', async ({ database }) => {
    const db = createDb(database.url, { max: 2 });
    onTestFinished(() => db.destroy());
    const chunks: number[] = [];
    const all: Agent[] = [];
    const total = await loadAllAgents(db, (chunk) => {
      chunks.push(chunk.length);
      all.push(...chunk);
    });
    expect(total).toBe(COUNT + oddIds.length);
    expect(all.length).toBe(total);
    expect(chunks.every((n) => n <= LOAD_CHUNK_SIZE)).toBe(true);
    const ids = all.map((a) => a.id);
    expect(ids).toEqual([...ids].sort());

    // Every seeded agent, whole: nothing dropped or misattached at a chunk or row boundary.
    const fleet = all.filter((a) => a.id.startsWith('fleet-'));
    expect(fleet.length).toBe(COUNT);
    const wrong = fleet.filter((agent, k) => !isDeepStrictEqual(asSeeded(agent), seeded(k + 1)));
    if (wrong[0]) expect(asSeeded(wrong[0])).toEqual(seeded(fleet.indexOf(wrong[0]) + 1));
    expect(wrong.length).toBe(0);

    // Exactly what the per-agent read (loadAgents) gives, for the awkward rows and around the chunk edges.
    const sample = [...oddIds, ...[1, 2, 10, LOAD_CHUNK_SIZE - 1, LOAD_CHUNK_SIZE, LOAD_CHUNK_SIZE + 1, 10_000, COUNT - 1, COUNT].map(fleetId)];
    const single = await loadAgents(db, { ids: sample });
    expect(single.length).toBe(sample.length);
    const byId = new Map(all.map((a) => [a.id, a]));
    for (const agent of single) expect(byId.get(agent.id), agent.id).toEqual(agent);

    const odd = byId.get('odd-escapes')!;
    expect(odd.name).toBe('Tab\there, newline\nthere, back\\slash \\N, “quotes”, émoji 🚀');
    expect(odd.grants.map((g) => g.scope)).toEqual(['a:first', 'crm:read', 'payments:transfer']);
    expect(odd.grants.map((g) => g.grantedAt.toISOString())).toEqual(['2026-01-01T00:00:00.120Z', '2026-01-01T00:00:00.999Z', '2026-01-01T00:00:00.000Z']);
    expect(odd.grants[2]!.constraints).toEqual({ maxAmount: 12.5, currencies: ['EUR', 'USD'], recipientDomains: ['tab\tand\\back.example'] });
    expect(odd.activeActions.map((a) => [a.kind, a.reason.length])).toEqual([['narrow', 'long\treason '.length + 300_000]]);
    expect(odd.status).toBe('narrowed');
    expect(byId.get('odd-decommissioned')!.decommissioned).toEqual({ at: new Date('2026-05-05T05:05:05Z'), by: 'unknown', reason: '' });
    expect(byId.get('odd-decommissioned')!.status).toBe('decommissioned');
    expect(byId.get('odd-no-grants')!.grants).toEqual([]);
    expect(byId.get('odd-no-grants')!.activeActions.map((a) => a.kind)).toEqual(['contain', 'revoke']);
    expect(byId.get('odd-no-grants')!.status).toBe('revoked');
    const scored = byId.get('odd-scores')!;
    expect([scored.trustScore, scored.trustTier, scored.newestEvidenceAt?.toISOString()]).toEqual([900, 'platinum', '2026-04-01T12:34:56.123Z']);
  }, 60_000);
});
