import { sql } from 'kysely';
import { describe, expect } from 'vitest';
import { runScheduledAuditVerify } from '../src/audit/scheduled-verify.js';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { asSuperuser as tamper } from './support/database.js';
import type { FakeSlack } from './support/fake-slack.js';
import { seedAuditEntries } from './support/fleet.js';

/** Issue 17 item 6: verify from the last checkpoint, `?full=true` walks everything, a scheduled full verify alerts. */

// The web role: no worker runs the scheduled verify on its own while the test tampers; a worker
// is started later to deliver the alarm.
const it = appTest({ env: { ARMALO_ROLE: 'web' }, slack: true, policy: 'channels:\n  incidents: { slack: C0INCIDENTS }\n' });
let app: TestApp;
let slack: FakeSlack;
it.beforeAll(({ app: started, slack: fake }) => {
  app = started;
  slack = fake;
});

const asSuperuser = (statement: ReturnType<typeof sql>) => tamper(app.db, statement);

describe('audit checkpoints', () => {
  it('verifies from the last checkpoint; a full verify and the scheduled one find tampering before it', async ({ startApp }) => {
    await app.call('PUT', '/v1/agents/cp-bot', sampleAgent);
    await seedAuditEntries(app.db, 3000);

    // No checkpoint yet: the first verify walks everything, then records one at the head.
    const first = await app.call('GET', '/v1/audit/verify');
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ ok: true, entries: 3001, full: false, from: { seq: '0', checkpoint: null }, checked: 3001, checkpointed: { id: '1', seq: '3001' } });

    // New entries through the API: the next verify walks only those.
    await app.call('POST', '/v1/agents/cp-bot/actions', { action: 'contain', reason: 'after the checkpoint' });
    await app.call('POST', '/v1/agents/cp-bot/actions', { action: 'restore', reason: 'done' });
    const incremental = await app.call('GET', '/v1/audit/verify');
    expect(incremental.body).toMatchObject({ ok: true, entries: 3003, full: false, from: { seq: '3001', checkpoint: '1' }, checked: 2, head: { seq: '3003' } });
    expect(incremental.body.checkpointed).toBeUndefined();

    const fullOk = await app.call('GET', '/v1/audit/verify?full=true');
    expect(fullOk.body).toMatchObject({ ok: true, entries: 3003, full: true, checked: 3003 });

    // An entry before the checkpoint is altered: the incremental verify does not walk it, a full one names it.
    await asSuperuser(sql`update audit_log set payload = jsonb_set(payload, '{reason}', '"nothing to see"') where seq = 1500`);
    expect((await app.call('GET', '/v1/audit/verify')).body).toMatchObject({ ok: true, from: { checkpoint: '1' } });
    const full = await app.call('GET', '/v1/audit/verify?full=true');
    expect(full.body).toMatchObject({ ok: false, full: true, firstBroken: { seq: '1500' } });
    expect(full.body.firstBroken.problem).toContain('altered');
    expect((await app.call('GET', '/v1/audit/verify?full=maybe')).status).toBe(400);

    // The scheduled full verify alerts once, through the outbox.
    const scheduled = await runScheduledAuditVerify({ db: app.db, clock: { now: () => new Date() } });
    expect(scheduled).toMatchObject({ alerted: true, verification: { ok: false, firstBroken: { seq: '1500' } } });
    const again = await runScheduledAuditVerify({ db: app.db, clock: { now: () => new Date() } });
    expect(again.alerted).toBe(false);
    const jobs = await app.db.selectFrom('outbox').select(['queue', 'job_name', 'payload']).where('job_name', '=', 'audit-broken-notice').execute();
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ queue: 'notify', payload: { firstBrokenSeq: '1500', problem: expect.stringContaining('altered') } });
    expect(Date.parse((jobs[0]!.payload as { at: string }).at)).toBeGreaterThan(Date.now() - 60_000);
    // A worker delivers it: one alarm in the incidents channel (its own daily full verify, which runs
    // at start, finds the same break and does not announce it again).
    await startApp({ env: { ARMALO_ROLE: 'worker' }, appOptions: { relayPollMs: 200 } });
    const alarms = () => slack.posts('C0INCIDENTS').filter((p) => JSON.stringify(p.args).includes('audit log is BROKEN'));
    await waitFor(() => alarms().length === 1, 15_000, 'the audit alarm in the incidents channel');
    expect(JSON.stringify(alarms()[0]!.args)).toContain('1500');
    await waitFor(async () => (await app.db.selectFrom('outbox').select('id').where('job_name', '=', 'audit-broken-notice').where('published_at', 'is not', null).execute()).length === 1, 5000, 'the alarm job published');
    expect(alarms()).toHaveLength(1);
  });

  it('the checkpoints are a chain of their own, and the entry a checkpoint recorded must keep its hash', async () => {
    // The checkpoint's own entry altered: the incremental verify starts there, so it notices.
    await asSuperuser(sql`update audit_log set actor = 'mallory' where seq = 3001`);
    const anchor = await app.call('GET', '/v1/audit/verify');
    expect(anchor.body).toMatchObject({ ok: false, full: false, firstBroken: { seq: '3001' } });
    expect(anchor.body.firstBroken.problem).toContain('checkpoint 1');

    // A forged checkpoint (moved past the tampered range) does not match its hash.
    await asSuperuser(sql`update audit_checkpoints set audit_seq = 3003 where id = 1`);
    const forged = await app.call('GET', '/v1/audit/verify');
    expect(forged.body).toMatchObject({ ok: false, firstBroken: { problem: expect.stringContaining('checkpoint altered') } });
  });
});
