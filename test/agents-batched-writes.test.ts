import { describe, expect } from 'vitest';
import { sql } from 'kysely';
import { sampleAgent, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';
import { inTransaction, waitForLockWait } from './support/locks.js';

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

  it('agents this replica has not seen are tried as new in one statement; one that exists after all is read and checked: the others are still created', async () => {
    // Committed by another writer whose change this replica has not received (version 0 is below
    // anything a view asks for): the view does not know it, so the batch is tried as all new.
    await sql`
      insert into agents (id, name, owner, risk_tier, status, version, created_by, created_at, updated_by, updated_at,
        decommissioned_at, decommissioned_by, decommission_reason)
      values ('unseen-retired', 'Unseen bot', 'ana@example.com', 'high', 'decommissioned', 0, 'api:other', now(), 'api:other', now(), now(), 'api:other', 'retired')`.execute(app.db);
    // A grant the registration does not list: a registration that went through would remove it.
    await sql`insert into grants (agent_id, scope, granted_by, granted_at) values ('unseen-retired', 'db:admin', 'api:other', now())`.execute(app.db);
    const seqBefore = (await app.db.selectFrom('audit_head').select('seq').executeTakeFirstOrThrow()).seq;
    const [retired, ...created] = await Promise.all([put('unseen-retired'), ...['unseen-1', 'unseen-2', 'unseen-3'].map((id) => put(id))]);
    expect(retired!.status).toBe(409);
    expect(retired!.body.error.message).toContain('unseen-retired was decommissioned');
    expect(created.map((a) => a.status)).toEqual([201, 201, 201]);
    // Nothing of the refused one was written, and the three new agents have one entry each.
    expect(await app.db.selectFrom('agents').select(['name', 'status']).where('id', '=', 'unseen-retired').executeTakeFirstOrThrow()).toEqual({ name: 'Unseen bot', status: 'decommissioned' });
    expect(await app.db.selectFrom('grants').select(['scope', 'removed_at']).where('agent_id', '=', 'unseen-retired').execute()).toEqual([{ scope: 'db:admin', removed_at: null }]);
    const entries = await app.db.selectFrom('audit_log').select(['subject', 'action']).where('seq', '>', seqBefore).orderBy('seq').execute();
    expect(entries.map((e) => e.subject).sort()).toEqual(['unseen-1', 'unseen-2', 'unseen-3']);
    expect((await app.call('GET', '/v1/audit/verify?full=true')).body.ok).toBe(true);
    for (const id of ['unseen-1', 'unseen-2', 'unseen-3']) expect((await decisionOf(app, id, 'crm:write')).decision).toBe('allow');
    expect((await decisionOf(app, 'unseen-retired', 'crm:write')).decision).toBe('deny');
  });

  it('a first registration racing another writer that creates the same agent, already held, is checked against it: 409 and nothing widened', async () => {
    // Another replica (or an import) creates the agent and it is contained or decommissioned before
    // this registration's write: our read found no row, so the write must not skip the refusals.
    await inTransaction(app.db, async (other) => {
      const row = (id: string, status: string) => sql`
        insert into agents (id, name, owner, risk_tier, status, version, created_by, created_at, updated_by, updated_at,
          decommissioned_at, decommissioned_by, decommission_reason)
        values (${id}, 'Race bot', 'ana@example.com', 'high', ${status}, 0, 'api:other', now(), 'api:other', now(),
          ${status === 'decommissioned' ? sql`now(), 'api:other', 'retired'` : sql`null, null, null`})`;
      await row('race-held', 'contained').execute(other);
      await row('race-retired', 'decommissioned').execute(other);
      await sql`insert into grants (agent_id, scope, granted_by, granted_at) values ('race-held', 'crm:write', 'api:other', now())`.execute(other);
      await sql`insert into agent_actions (id, agent_id, kind, scopes, reason, actor, touched_grants, created_at)
        values (gen_random_uuid(), 'race-held', 'contain', '[]', 'incident', 'api:other', '[]', now())`.execute(other);
      const answers = Promise.all([put('race-held'), put('race-retired')]);
      await waitForLockWait(app.db, "a registration to wait for the other writer's new row");
      await sql`commit`.execute(other);
      const [held, retired] = await answers;
      expect(held.status).toBe(409);
      expect(held.body.error.message).toMatch(/contained: this update would widen it/);
      expect(retired.status).toBe(409);
      expect(retired.body.error.message).toContain('race-retired was decommissioned');
    });
    const grants = await app.db.selectFrom('grants').select(['scope', 'removed_at']).where('agent_id', '=', 'race-held').execute();
    expect(grants).toEqual([{ scope: 'crm:write', removed_at: null }]);
    const rows = await app.db.selectFrom('agents').select(['id', 'status', 'name']).where('id', 'in', ['race-held', 'race-retired']).orderBy('id').execute();
    expect(rows).toEqual([
      { id: 'race-held', status: 'contained', name: 'Race bot' },
      { id: 'race-retired', status: 'decommissioned', name: 'Race bot' },
    ]);
    const audit = await app.db.selectFrom('audit_log').select('seq').where('subject', 'in', ['race-held', 'race-retired']).execute();
    expect(audit).toEqual([]);
    // This replica did not store the registration it refused: no grant of it allows anything here.
    expect((await decisionOf(app, 'race-held', 'payments:transfer')).decision).toBe('deny');
    expect((await decisionOf(app, 'race-retired', 'payments:transfer')).decision).toBe('deny');
  });
});
