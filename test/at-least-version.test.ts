import { afterAll, describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { postDecision } from './support/drive.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { quickDecisionInput } from '../src/http/routes/decisions.routes.js';
import { decisionInputSchema } from '../src/api/schemas.js';

// Fresh on demand (DESIGN §5): an action answers the version it committed; a decision with
// `atLeastVersion` is answered only from a view that holds it, else `deny` with `view_behind`.
// Two instances on one database and Redis prefix; B reaches Redis through a proxy the test can
// black-hole, so B's push can be held back while a decision waits for it.
let a: TestApp;
let b: TestApp;
const proxy = new TcpProxy('127.0.0.1', 6379);

type DecisionBody = { decision: string; reasonCodes: string[]; reasons: string[]; viewVersion: string; agentStatus: string | null };

const decide = (app: TestApp, body: Record<string, unknown>) => postDecision(app, body) as Promise<{ status: number; body: DecisionBody }>;

const it = appTest({ env: { ARMALO_VIEW_STALE_AFTER_MS: '10000' } });
it.beforeAll(async ({ app, startApp }) => {
  a = app;
  const port = await proxy.start();
  b = await startApp({ env: { ARMALO_ROLE: 'web', REDIS_URL: `redis://127.0.0.1:${port}` } });
});

afterAll(async () => {
  await proxy.stop();
});

describe('atLeastVersion', () => {
  it('a containment on one instance, then a decision on another with its version: denied for the containment', async () => {
    const put = await a.call('PUT', '/v1/agents/fresh-bot', sampleAgent);
    expect(put.status).toBe(201);
    // Registration answers carry the version too: B can be asked to see the new agent.
    expect(put.body.version).toMatch(/^\d+$/);
    // B reaches that version by its push (or, on a loaded machine, its next poll): never an allow before.
    await waitFor(async () => {
      const seen = await decide(b, { agentId: 'fresh-bot', action: 'crm:write', atLeastVersion: put.body.version });
      if (seen.body.decision === 'allow') return true;
      expect(seen.body.reasonCodes).toEqual(['view_behind']);
      return false;
    }, 10_000, 'B to reach the registration version');

    // B's push channel is held back: without atLeastVersion B could still answer from before.
    proxy.blackhole();
    let version: string;
    try {
      const contain = await a.call('POST', '/v1/agents/fresh-bot/actions', { action: 'contain', reason: 'fresh on demand' });
      expect(contain.status).toBe(201);
      version = contain.body.version as string;
      expect(version).toMatch(/^\d+$/);
      expect(BigInt(version)).toBeGreaterThan(BigInt(put.body.version as string));
      const pending = decide(b, { agentId: 'fresh-bot', action: 'crm:write', atLeastVersion: version });
      proxy.resume();
      const first = await pending;
      expect(first.status).toBe(200);
      // Within 250 ms B either sees the containment or says it is behind: never the old allow. On a
      // quiet machine it is the former; a loaded one may need the retry below.
      expect(first.body.decision).toBe('deny');
      let res = first;
      await waitFor(async () => {
        res = await decide(b, { agentId: 'fresh-bot', action: 'crm:write', atLeastVersion: version });
        expect(res.body.decision).toBe('deny');
        return res.body.reasonCodes[0] === 'agent_contained';
      }, 10_000, 'B to reach the containment version');
      expect([['agent_contained'], ['view_behind']]).toContainEqual(first.body.reasonCodes);
      expect(res.body).toMatchObject({ decision: 'deny', reasonCodes: ['agent_contained'], agentStatus: 'contained' });
      expect(BigInt(res.body.viewVersion)).toBeGreaterThanOrEqual(BigInt(version));
    } finally {
      proxy.resume();
    }

    // A version B already holds answers at once, the same as without it.
    const again = await decide(b, { agentId: 'fresh-bot', action: 'mail:send', atLeastVersion: version });
    expect(again.body).toMatchObject({ decision: 'allow' });
  });

  it('a version this instance does not reach in time: deny with view_behind, in the usual decision shape', async () => {
    await a.call('PUT', '/v1/agents/behind-bot', sampleAgent);
    await waitFor(async () => (await decide(b, { agentId: 'behind-bot', action: 'crm:write' })).body.decision === 'allow', 3000, 'B to see the agent');
    const denies = async () => Number(/armalo_decisions_total\{decision="deny"\} (\d+)/.exec((await b.call('GET', '/metrics')).body as string)?.[1] ?? 0);
    const deniesBefore = await denies();
    const res = await decide(b, { agentId: 'behind-bot', action: 'crm:write', atLeastVersion: '9000000000000000000' });
    expect(res.status).toBe(200);
    // Counted like every other answer.
    expect(await denies()).toBe(deniesBefore + 1);
    expect(res.body).toMatchObject({ decision: 'deny', reasonCodes: ['view_behind'], agentStatus: 'active' });
    expect(res.body.reasons[0]).toContain('9000000000000000000');
    expect(res.body.viewVersion).toMatch(/^\d+$/);
    expect(BigInt(res.body.viewVersion)).toBeLessThan(9000000000000000000n);
    // An unknown agent behind the version: still view_behind (fail closed either way).
    expect((await decide(b, { agentId: 'nobody', action: 'crm:write', atLeastVersion: '9000000000000000000' })).body).toMatchObject({ decision: 'deny', reasonCodes: ['view_behind'], agentStatus: null });
  });

  it('dry runs carry no version; committed actions do, also when replayed', async () => {
    await a.call('PUT', '/v1/agents/dry-bot', sampleAgent);
    const dry = await a.call('POST', '/v1/agents/dry-bot/actions', { action: 'narrow', scopes: ['crm:write'], reason: 'preview', dryRun: true });
    expect(dry.status).toBe(200);
    expect(dry.body.version).toBeUndefined();
    const narrow = await a.call('POST', '/v1/agents/dry-bot/actions', { action: 'narrow', scopes: ['crm:write'], reason: 'for real' });
    expect(narrow.status).toBe(201);
    const res = await decide(b, { agentId: 'dry-bot', action: 'crm:write', atLeastVersion: narrow.body.version });
    expect(res.body).toMatchObject({ decision: 'deny', reasonCodes: ['scope_narrowed'] });
  });

  it('a bad atLeastVersion is refused with 400, naming the field', async () => {
    await a.call('PUT', '/v1/agents/bad-version-bot', sampleAgent);
    for (const bad of ['abc', '-1', '1.5', '', ' 1', '1e3', '0x10', '1'.repeat(20), 12, null, true, ['1'], { v: '1' }]) {
      const res = await a.call('POST', '/v1/decisions', { agentId: 'bad-version-bot', action: 'crm:write', atLeastVersion: bad });
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(JSON.stringify(res.body), JSON.stringify(bad)).toContain('atLeastVersion');
    }
  });

  it('the decision fast path accepts exactly what the schema accepts, atLeastVersion included', () => {
    const bodies: unknown[] = [
      { agentId: 'bot', action: 'a:b', atLeastVersion: '0' },
      { agentId: 'bot', action: 'a:b', atLeastVersion: '42', context: { amount: 1 } },
      { agentId: 'bot', action: 'a:b', atLeastVersion: '9'.repeat(19) },
      { agentId: 'bot', action: 'a:b', atLeastVersion: '9'.repeat(20) },
      { agentId: 'bot', action: 'a:b', atLeastVersion: 42 },
      { agentId: 'bot', action: 'a:b', atLeastVersion: '-1' },
      { agentId: 'bot', action: 'a:b', atLeastVersion: undefined },
    ];
    for (const body of bodies) {
      const quick = quickDecisionInput(body);
      const zod = decisionInputSchema.safeParse(body);
      expect(quick !== undefined, JSON.stringify(body)).toBe(zod.success);
      if (quick) expect(quick).toEqual({ ...zod.data, context: zod.data?.context ?? {} });
    }
  });
});
