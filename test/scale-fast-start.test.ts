import { createServer } from 'node:net';
import { describe, expect } from 'vitest';
import { createDb } from '../src/db/database.js';
import { loadAgents, loadAllAgents } from '../src/agents/agents.repository.js';
import { TOKEN } from './support/app.js';
import { appTest } from './support/fixture.js';
import { fleetId, seedFleet } from './support/fleet.js';

/** Issue 17 item 4: the view's initial load streams 70,000+ agents, and /readyz answers only once it is complete. */

const COUNT = 70_500;
// The file's database is seeded before any instance starts; the test starts the instance itself.
const it = appTest({ env: { ARMALO_ROLE: 'web' } });
it.beforeAll(async ({ database }) => {
  const db = createDb(database.url, { max: 2 });
  try {
    await seedFleet(db, COUNT);
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

describe('fast start with a large fleet', () => {
  it('loads 70,500 agents in keyset pages and reports ready only with the whole view', async ({ startApp }) => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const starting = startApp({ env: { PORT: String(port) } });
    // Ask /readyz all along the start: the first 200 must come from a replica that holds every agent.
    let firstReady: { last: string; contained: string; active: string } | undefined;
    let started = false;
    void starting.then(() => (started = true), () => (started = true));
    while (!firstReady) {
      const ready = await fetch(`${base}/readyz`).then((r) => r.status, () => 0);
      if (ready === 200) {
        firstReady = {
          last: await decide(base, fleetId(COUNT - 1), 'crm:read'),
          contained: await decide(base, fleetId(COUNT), 'crm:read'),
          active: await decide(base, fleetId(1), 'crm:read'),
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
    expect(firstReady).toEqual({ last: 'allow', contained: 'deny', active: 'allow' });
    expect(app.view?.size).toBe(COUNT);

    // The paged load reads each agent exactly as the per-agent read does (grants, actions, score, evidence).
    const sample = [1, 5, 10, 4999, 5000, 5001, 10_000, COUNT - 1, COUNT].map(fleetId);
    const single = await loadAgents(app.db, { ids: sample });
    const paged = new Map<string, unknown>();
    await loadAllAgents(app.db, (page) => {
      for (const a of page) if (sample.includes(a.id)) paged.set(a.id, a);
    });
    for (const agent of single) expect(paged.get(agent.id)).toEqual(agent);
  }, 60_000);
});
