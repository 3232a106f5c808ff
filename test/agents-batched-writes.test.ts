import { describe, expect } from 'vitest';
import { sampleAgent, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';

// Concurrent PUTs share transactions (src/agents/write-batcher.ts): each caller must still get its
// own answer, its own version and its own audit entry, and a refused one must fail alone.
const it = appTest();
let app: TestApp;

it.beforeAll(({ app: started }) => {
  app = started;
});

const put = (id: string, body: Record<string, unknown> = sampleAgent) => app.call('PUT', `/v1/agents/${id}`, body);

describe('concurrent registrations', () => {
  it('each caller gets its own answer and version; a refused one (409) fails alone; the chain verifies', async () => {
    await put('batch-held');
    expect((await app.call('POST', '/v1/agents/batch-held/actions', { action: 'contain', reason: 'batch test' })).status).toBe(201);
    await put('batch-same');
    const before = (await app.call('GET', '/v1/audit/verify?full=true')).body.entries as number;

    const fresh = Array.from({ length: 40 }, (_, i) => `batch-${i}`);
    const answers = await Promise.all([
      ...fresh.map((id, i) => put(id, { ...sampleAgent, name: `Batch bot ${i}` })),
      put('batch-held', { ...sampleAgent, grants: [...sampleAgent.grants, { scope: 'db:admin' }] }),
      put('batch-same'),
    ]);
    const held = answers[40]!;
    const same = answers[41]!;
    expect(held.status).toBe(409);
    expect(held.body.error.message).toMatch(/contained: this update would widen it/);
    expect(same.status).toBe(200);
    const created = answers.slice(0, 40);
    expect(created.map((a) => a.status)).toEqual(fresh.map(() => 201));
    created.forEach((a, i) => expect(a.body).toMatchObject({ id: fresh[i], name: `Batch bot ${i}`, status: 'active' }));
    const versions = created.map((a) => BigInt(a.body.version));
    expect(new Set(versions).size).toBe(40);
    // Each answer's version is the one stored, and each agent is decided on at once by this replica.
    for (const [i, id] of fresh.entries()) {
      if (i % 10 !== 0) continue;
      expect((await app.call('GET', `/v1/agents/${id}`)).body.version).toBe(created[i]!.body.version);
      expect((await decisionOf(app, id, 'crm:write')).decision).toBe('allow');
    }
    expect((await app.call('GET', '/v1/agents/batch-held')).body.grants.map((g: { scope: string }) => g.scope)).not.toContain('db:admin');

    // One audit entry per registration that changed something: 40, not the refused one nor the repeat.
    const verify = await app.call('GET', '/v1/audit/verify?full=true');
    expect(verify.body).toMatchObject({ ok: true, entries: before + 40 });
    const audit = await app.call('GET', '/v1/audit?agentId=batch-7');
    expect(audit.body.entries.map((e: { action: string; actor: string }) => [e.action, e.actor])).toEqual([['agent.registered', 'api:platform']]);
  });

  it('concurrent updates of one agent all apply, one after the other, each with a higher version', async () => {
    await put('batch-busy');
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => put('batch-busy', { ...sampleAgent, name: `Busy ${i}` })));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
    const versions = answers.map((a) => BigInt(a.body.version));
    expect(new Set(versions).size).toBe(6);
    // The last one to commit holds the highest version, and its name is what is stored.
    const last = answers[versions.indexOf(versions.reduce((x, y) => (y > x ? y : x)))]!;
    const stored = await app.call('GET', '/v1/agents/batch-busy');
    expect(stored.body).toMatchObject({ name: last.body.name, version: last.body.version });
    const audit = await app.call('GET', '/v1/audit?agentId=batch-busy');
    expect(audit.body.entries.map((e: { action: string }) => e.action)).toEqual([...Array(6).fill('agent.updated'), 'agent.registered']);
  });

  it('a batch chained by Postgres hashes what the verifier hashes: any text, entries in version order', async () => {
    const before = (await app.call('GET', '/v1/audit/verify?full=true')).body.entries as number;
    const names = ['Agënt ✓ "quoted"', 'back\\slash and \n newline', '日本語のエージェント', 'emoji 🚀 bot', "it's a <b>tag</b>", 'tab\there'];
    const ids = Array.from({ length: 24 }, (_, i) => `chain-${i}`);
    const answers = await Promise.all(ids.map((id, i) => put(id, { ...sampleAgent, name: names[i % names.length], owner: `ü${i}@example.com` })));
    expect(answers.map((a) => a.status)).toEqual(ids.map(() => 201));
    answers.forEach((a, i) => expect(a.body.name).toBe(names[i % names.length]));
    const verify = await app.call('GET', '/v1/audit/verify?full=true');
    expect(verify.body).toMatchObject({ ok: true, entries: before + 24 });
    // Audit order (seq) follows version order: an entry written later never carries a lower version.
    const byVersion = ids.map((id, i) => ({ id, version: BigInt(answers[i]!.body.version) })).sort((x, y) => (x.version < y.version ? -1 : 1));
    const seqs: bigint[] = [];
    for (const { id } of byVersion) {
      const entries = (await app.call('GET', `/v1/audit?agentId=${id}`)).body.entries as { seq: string }[];
      seqs.push(BigInt(entries[0]!.seq));
    }
    expect([...seqs].sort((x, y) => (x < y ? -1 : 1))).toEqual(seqs);
  });
});
