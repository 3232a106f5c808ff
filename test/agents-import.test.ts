import { describe, expect } from 'vitest';
import { OTHER_TOKEN, TOKEN, sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';
import { importAgents } from '../src/agents/agent-import.js';

const PLATFORM_TOKEN = 'tok_platform_scoped_0123456789ab';
const it = appTest({ env: { ARMALO_API_TOKENS: `platform:${TOKEN},automation:${OTHER_TOKEN},svc:${PLATFORM_TOKEN}:platform` } });
let app: TestApp;

it.beforeAll(({ app: started }) => {
  app = started;
});

const line = (id: string, overrides: Record<string, unknown> = {}) => JSON.stringify({ id, ...sampleAgent, ...overrides });

async function importBody(body: string | ReadableStream<Uint8Array>, options: { token?: string; contentType?: string } = {}) {
  const res = await fetch(`${app.url}/v1/agents:import`, {
    method: 'POST',
    headers: { authorization: `Bearer ${options.token ?? TOKEN}`, 'content-type': options.contentType ?? 'application/x-ndjson' },
    body,
    ...(typeof body === 'string' ? {} : { duplex: 'half' }),
  } as RequestInit);
  return { status: res.status, body: (await res.json()) as any };
}

async function auditActions(agentId: string): Promise<string[]> {
  const res = await app.call('GET', `/v1/audit?agentId=${agentId}`);
  return res.body.entries.map((e: { action: string }) => e.action);
}

describe('POST /v1/agents:import', () => {
  it('applies good lines and refuses bad ones with their line numbers, one audit entry per agent', async () => {
    const body = [
      line('imp-1'),
      '{"id": "imp-bad-json", ',
      '',
      line('imp-2', { riskTier: 'low' }),
      JSON.stringify({ ...sampleAgent }),
      line('imp-3', { colour: 'blue' }),
      line('imp 4'),
      line('imp-5', { grants: [{ scope: 'Payments' }] }),
      '[1, 2]',
      `${line('imp-6')}\r`,
    ].join('\n');
    const res = await importBody(body);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ applied: 3, created: 3, updated: 0, unchanged: 0, refusedCount: 6, lines: 10 });
    expect(res.body.refused.map((r: { line: number }) => r.line)).toEqual([2, 5, 6, 7, 8, 9]);
    const errors = Object.fromEntries(res.body.refused.map((r: { line: number; error: string }) => [r.line, r.error]));
    expect(errors[2]).toMatch(/not valid JSON/);
    expect(errors[5]).toMatch(/id: required/);
    expect(errors[6]).toMatch(/unknown field: colour/);
    expect(errors[7]).toMatch(/agent id/);
    expect(errors[8]).toMatch(/grants\[0\]\.scope/);
    expect(errors[9]).toMatch(/expected a JSON object/);

    for (const id of ['imp-1', 'imp-2', 'imp-6']) {
      const got = await app.call('GET', `/v1/agents/${id}`);
      expect(got.status).toBe(200);
      expect(got.body.grants.map((g: { scope: string }) => g.scope)).toEqual(['crm:write', 'mail:send', 'payments:refund', 'payments:transfer']);
      expect(await auditActions(id)).toEqual(['agent.registered']);
    }
    expect((await app.call('GET', '/v1/agents/imp-2')).body.riskTier).toBe('low');
    expect((await app.call('GET', '/v1/agents/imp-3')).status).toBe(404);
    expect((await decisionOf(app, 'imp-1', 'payments:transfer', { amount: 100 })).decision).toBe('allow');
    const verify = await app.call('GET', '/v1/audit/verify?full=true');
    expect(verify.body.ok).toBe(true);
  });

  it('importing the same lines again changes nothing; a changed line updates its agent', async () => {
    const body = [line('again-1'), line('again-2')].join('\n');
    expect((await importBody(body)).body).toMatchObject({ applied: 2, created: 2 });
    const versionBefore = (await app.call('GET', '/v1/agents/again-1')).body.version;
    const second = await importBody(body);
    expect(second.body).toMatchObject({ applied: 2, created: 0, updated: 0, unchanged: 2, refused: [] });
    expect(await auditActions('again-1')).toEqual(['agent.registered']);
    expect((await app.call('GET', '/v1/agents/again-1')).body.version).toBe(versionBefore);

    const changed = await importBody([line('again-1', { grants: [{ scope: 'crm:write' }] }), line('again-2')].join('\n'));
    expect(changed.body).toMatchObject({ applied: 2, updated: 1, unchanged: 1 });
    expect(await auditActions('again-1')).toEqual(['agent.updated', 'agent.registered']);
    expect((await decisionOf(app, 'again-1', 'mail:send')).decision).toBe('deny');
  });

  it('two lines for one agent apply in order: the last one wins', async () => {
    const res = await importBody([line('twice-1'), line('twice-1', { grants: [{ scope: 'crm:write' }] }), line('twice-2')].join('\n'));
    expect(res.body).toMatchObject({ applied: 3, created: 2, updated: 1 });
    const got = await app.call('GET', '/v1/agents/twice-1');
    expect(got.body.grants.map((g: { scope: string }) => g.scope)).toEqual(['crm:write']);
    expect(await auditActions('twice-1')).toEqual(['agent.updated', 'agent.registered']);
  });

  it('refuses a line that would widen a contained agent, as PUT does, and applies the others', async () => {
    await app.call('PUT', '/v1/agents/held-imp', sampleAgent);
    expect((await app.call('POST', '/v1/agents/held-imp/actions', { action: 'contain', reason: 'import test' })).status).toBe(201);
    const wider = { grants: [...sampleAgent.grants, { scope: 'db:admin' }] };
    const res = await importBody([line('held-imp', wider), line('free-imp')].join('\n'));
    expect(res.body).toMatchObject({ applied: 1, created: 1, refusedCount: 1 });
    expect(res.body.refused[0]).toMatchObject({ line: 1 });
    expect(res.body.refused[0].error).toMatch(/contained: this update would widen it.*db:admin/);
    const held = await app.call('GET', '/v1/agents/held-imp');
    expect(held.body.grants.map((g: { scope: string }) => g.scope)).not.toContain('db:admin');
    expect(await auditActions('held-imp')).toEqual(['agent.contain', 'agent.registered']);
    // Narrowing a held agent is allowed, as with PUT.
    const narrower = await importBody(line('held-imp', { grants: [{ scope: 'mail:send', keepInContainment: true }] }));
    expect(narrower.body).toMatchObject({ applied: 1, updated: 1 });
  });

  it('refuses a line longer than the limit without reading it whole, and goes on with the next', async () => {
    const huge = line('huge-1', { name: 'x'.repeat(70 * 1024) });
    const res = await importBody([line('before-huge'), huge, line('after-huge')].join('\n'));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ applied: 2, refused: [{ line: 2, error: 'the line is longer than 65536 bytes' }] });
    expect((await app.call('GET', '/v1/agents/after-huge')).status).toBe(200);
    expect((await app.call('GET', '/v1/agents/huge-1')).status).toBe(404);
  });

  it('answers 415 to another content type, 400 to an empty body, 403 to a platform token; nothing changes', async () => {
    const body = line('never-1');
    const json = await importBody(body, { contentType: 'application/json' });
    expect(json.status).toBe(415);
    expect(json.body.error.message).toMatch(/application\/x-ndjson/);
    for (const empty of ['', '\n\n  \n']) {
      const res = await importBody(empty);
      expect(res.status).toBe(400);
      expect(res.body.error.message).toMatch(/the import is empty/);
    }
    const platform = await importBody(body, { token: PLATFORM_TOKEN });
    expect(platform.status).toBe(403);
    expect((await app.call('GET', '/v1/agents/never-1')).status).toBe(404);
  });

  it('applies lines while the body is still arriving, across batches, with versions in order', async () => {
    const encoder = new TextEncoder();
    let push!: (text: string | null) => void;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        push = (text) => (text === null ? controller.close() : controller.enqueue(encoder.encode(text)));
      },
    });
    const answer = importBody(stream);
    // One batch is 500 lines: the 501st line starts the next, and the first batch applies.
    push(`${Array.from({ length: 501 }, (_, i) => line(`stream-${i}`, { grants: [{ scope: 'crm:read' }] })).join('\n')}\n`);
    await waitFor(async () => (await app.call('GET', '/v1/agents/stream-0')).status === 200, 10_000, 'the first batch to apply before the body ends');
    push(`not json\n${Array.from({ length: 300 }, (_, i) => line(`stream-${501 + i}`, { grants: [{ scope: 'crm:read' }] })).join('\n')}`);
    push(null);
    const res = await answer;
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ applied: 801, created: 801, refusedCount: 1, refused: [{ line: 502 }] });
    // Batches commit in line order, so versions do too (and each agent has one of its own).
    const versions = await Promise.all(['stream-0', 'stream-499', 'stream-500', 'stream-800'].map(async (id) => BigInt((await app.call('GET', `/v1/agents/${id}`)).body.version)));
    expect([...versions].sort((x, y) => (x < y ? -1 : 1))).toEqual(versions);
    expect(new Set(versions).size).toBe(4);
    expect(await auditActions('stream-800')).toEqual(['agent.registered']);
    const verify = await app.call('GET', '/v1/audit/verify?full=true');
    expect(verify.body).toMatchObject({ ok: true });
  });

  it('another replica sees the imported agents', async ({ startApp }) => {
    const other = await startApp({ env: { ARMALO_ROLE: 'web' } });
    await waitFor(async () => (await other.call('GET', '/readyz')).status === 200, 10_000, 'the replica to be ready');
    const res = await importBody(Array.from({ length: 20 }, (_, i) => line(`seen-${i}`)).join('\n'));
    expect(res.body).toMatchObject({ applied: 20 });
    await waitFor(
      async () => {
        const all = await Promise.all([0, 7, 19].map((i) => decisionOf(other, `seen-${i}`, 'crm:write')));
        return all.every((d) => d.decision === 'allow');
      },
      3000,
      'the other replica to allow for imported agents',
    );
  });

  it('with small batches applying two at once, every line for one agent still applies in line order', async () => {
    // Batches of 3, two applying at once: "order-0" appears in batches 1, 2 and 4 (its own
    // repeats start new batches), "order-1" in batches 1 and 3; the last line for each must win.
    const lines: string[] = [];
    const names: Record<string, string> = {};
    const add = (id: string, name: string) => {
      lines.push(JSON.stringify({ id, ...sampleAgent, name }));
      names[id] = name;
    };
    add('order-0', 'first');
    add('order-1', 'first');
    add('order-2', 'only');
    add('order-0', 'second');
    for (let i = 3; i < 12; i++) add(`order-${i}`, 'only');
    add('order-1', 'second');
    add('order-0', 'third');
    const body = (async function* () {
      yield Buffer.from(`${lines.join('\n')}\n`);
    })();
    const result = await importAgents(body, {
      registerMany: (items) => app.agents.registerMany(items),
      actor: 'api:platform',
      batchSize: 3,
      concurrency: 2,
    });
    expect(result).toMatchObject({ applied: lines.length, refusedCount: 0 });
    for (const [id, name] of Object.entries(names)) expect((await app.call('GET', `/v1/agents/${id}`)).body.name).toBe(name);
    expect(await auditActions('order-0')).toEqual(['agent.updated', 'agent.updated', 'agent.registered']);
    const entries = (await app.call('GET', '/v1/audit?agentId=order-0')).body.entries as { payload: { name: string } }[];
    expect(entries.map((e) => e.payload.name)).toEqual(['third', 'second', 'first']);
  });
});
