import { describe, expect } from 'vitest';
import { sampleAgent, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';

const it = appTest({ env: { ARMALO_ROLE: 'web' } });
let app: TestApp;

it.beforeAll(({ app: started }) => {
  app = started;
});

describe('audit verify under concurrent writers', () => {
  it('12 writers keep appending while verify runs 40 times: every verify says the chain is intact', async () => {
    let done = false;
    let writes = 0;
    // Each writer registers its agent, then keeps updating it (every change is an audit entry).
    const writer = async (w: number) => {
      for (let i = 0; !done; i++) {
        const res = await app.call('PUT', `/v1/agents/writer-${w}`, { ...sampleAgent, name: `Writer ${w} rev ${i}` });
        expect(res.status).toBeLessThan(300);
        writes++;
      }
    };
    const writers = Array.from({ length: 12 }, (_, w) => writer(w));
    const results: { ok: boolean; problem?: string }[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const res = await app.call('GET', '/v1/audit/verify');
        expect(res.status).toBe(200);
        results.push({ ok: res.body.ok, problem: res.body.firstBroken?.problem });
      }
    } finally {
      done = true;
      await Promise.all(writers);
    }
    expect(writes).toBeGreaterThan(40);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    // The chat command and packets share the same check.
    const final = await app.call('GET', '/v1/audit/verify');
    expect(final.body.ok).toBe(true);
    expect(Number(final.body.head.seq)).toBe(final.body.entries);
  });
});
