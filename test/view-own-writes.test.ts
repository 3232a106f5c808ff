import { describe, expect } from 'vitest';
import { sql } from 'kysely';
import { sampleAgent, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';

// A registration batch's own replica stores the agents it wrote without reading them back
// (PermissionView.publishWritten), and may then say it holds every change up to the batch's last
// version only when nothing else committed in between. The poll is slowed down here so that
// only the write path itself can bring a change in.
const it = appTest({ env: { ARMALO_VIEW_STALE_AFTER_MS: '60000' }, appOptions: { heartbeatMs: 20_000 } });
let app: TestApp;

it.beforeAll(({ app: started }) => {
  app = started;
});

const put = (id: string, body: Record<string, unknown> = sampleAgent) => app.call('PUT', `/v1/agents/${id}`, body);

describe('the writer view after a registration', () => {
  it('holds the agent it just wrote at the version it answered, and decides on it at once', async () => {
    const created = await put('own-a');
    expect(created.status).toBe(201);
    expect(app.view!.version).toBe(BigInt(created.body.version));
    expect((await decisionOf(app, 'own-a', 'crm:write')).decision).toBe('allow');
    const narrowed = await put('own-a', { ...sampleAgent, grants: sampleAgent.grants.filter((g) => g.scope !== 'crm:write') });
    expect(narrowed.status).toBe(200);
    expect(app.view!.version).toBe(BigInt(narrowed.body.version));
    expect((await decisionOf(app, 'own-a', 'crm:write')).decision).toBe('deny');
  });

  it('does not skip a change that committed between the view and the batch (its publish lost): it reads it too', async () => {
    expect((await put('own-x')).status).toBe(201);
    expect((await decisionOf(app, 'own-x', 'crm:write')).decision).toBe('allow');
    // Another writer's change, as another replica commits it (version drawn under the audit head
    // lock), whose publish never arrives: crm:write is removed from own-x.
    await app.db.transaction().execute(async (trx) => {
      await sql`update grants set removed_at = now(), removed_by = 'test' where agent_id = 'own-x' and scope = 'crm:write'`.execute(trx);
      await sql`update agents set version = next.v
        from (select nextval('permission_version_seq') as v from (select 1 from audit_head where id = 1 for update) as head) as next
        where agents.id = 'own-x'`.execute(trx);
    });
    expect((await decisionOf(app, 'own-x', 'crm:write')).decision).toBe('allow');

    // Our batch's version comes after that change: the view must not claim it holds everything up
    // to it without having read the change in between.
    const y = await put('own-y');
    expect(y.status).toBe(201);
    expect(app.view!.version).toBeGreaterThanOrEqual(BigInt(y.body.version));
    expect((await decisionOf(app, 'own-x', 'crm:write')).decision).toBe('deny');
    expect((await decisionOf(app, 'own-y', 'crm:write')).decision).toBe('allow');
  });
});
