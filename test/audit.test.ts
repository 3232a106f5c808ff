import { sql } from 'kysely';
import { describe, expect } from 'vitest';
import { sampleAgent, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { asSuperuser as tamper } from './support/database.js';

const it = appTest({ env: { ARMALO_ROLE: 'web' } });
let app: TestApp;

it.beforeAll(({ app: started }) => {
  app = started;
});

const asSuperuser = (statement: ReturnType<typeof sql>) => tamper(app.db, statement);

describe('audit log', () => {
  it('records every state change in one chain, also under concurrent writers', async () => {
    await app.call('PUT', '/v1/agents/audit-a', sampleAgent);
    await app.call('PUT', '/v1/agents/audit-b', sampleAgent);
    await Promise.all([
      app.call('POST', '/v1/agents/audit-a/actions', { action: 'narrow', scopes: ['crm:*'], reason: 'r1' }),
      app.call('POST', '/v1/agents/audit-b/actions', { action: 'contain', reason: 'r2' }),
      app.call('POST', '/v1/agents/audit-a/actions', { action: 'contain', reason: 'r3' }),
      app.call('PUT', '/v1/agents/audit-c', sampleAgent),
    ]);
    const page = await app.call('GET', '/v1/audit?limit=50');
    expect(page.body.entries).toHaveLength(6);
    expect(page.body.entries.map((e: any) => Number(e.seq))).toEqual([6, 5, 4, 3, 2, 1]);
    for (let i = 0; i < 5; i++) expect(page.body.entries[i].prevHash).toBe(page.body.entries[i + 1].hash);
    const verify = await app.call('GET', '/v1/audit/verify');
    expect(verify.body).toMatchObject({ ok: true, entries: 6, head: { seq: '6' } });

    const byAgent = await app.call('GET', '/v1/audit?agentId=audit-b');
    expect(byAgent.body.entries.map((e: any) => e.action)).toEqual(['agent.contain', 'agent.registered']);
    const paged = await app.call('GET', '/v1/audit?limit=2');
    expect(paged.body.nextBefore).toBe('5');
    const next = await app.call('GET', `/v1/audit?limit=2&before=${paged.body.nextBefore}`);
    expect(next.body.entries.map((e: any) => e.seq)).toEqual(['4', '3']);
  });

  it('refuses updates and deletes through ordinary SQL', async () => {
    await expect(sql`update audit_log set actor = 'mallory' where seq = 1`.execute(app.db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_log where seq = 1`.execute(app.db)).rejects.toThrow(/append-only/);
  });

  it('names the first altered entry when a row is tampered with', async () => {
    await asSuperuser(sql`update audit_log set payload = jsonb_set(payload, '{reason}', '"nothing to see"') where seq = 3`);
    const verify = await app.call('GET', '/v1/audit/verify');
    expect(verify.body.ok).toBe(false);
    expect(verify.body.firstBroken).toMatchObject({ seq: '3' });
    expect(verify.body.firstBroken.problem).toContain('altered');
  });

  it('notices entries removed from the end of the chain', async ({ startApp }) => {
    // A database of its own: this test deletes from the chain.
    const other = await startApp({ isolated: true });
    {
      await other.call('PUT', '/v1/agents/tail-bot', sampleAgent);
      await other.call('POST', '/v1/agents/tail-bot/actions', { action: 'revoke', reason: 'covering tracks' });
      await other.db.connection().execute(async (conn) => {
        await sql`set session_replication_role = replica`.execute(conn);
        await sql`delete from audit_log where seq = 2`.execute(conn);
        await sql`set session_replication_role = origin`.execute(conn);
      });
      const verify = await other.call('GET', '/v1/audit/verify');
      expect(verify.body).toMatchObject({ ok: false, firstBroken: { seq: '2' } });
      expect(verify.body.firstBroken.problem).toContain('removed');
    }
  });
});
