import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';

// An events webhook is configured, so the good rows' events become jobs (without one, the relay
// marks event rows published without a job: test/outbox-no-events-webhook.test.ts).
const it = appTest({ events: { secret: 'whsec_poison_0123456789abcdef' }, appOptions: { relayPollMs: 200 } });
let app: TestApp;

it.beforeAll(({ app: started }) => {
  app = started;
});

const outboxRow = (id: string) => app.db.selectFrom('outbox').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

describe('a poisoned outbox row', () => {
  it('does not hold up the good rows beside it; its attempts and error are recorded, then it is parked once', async () => {
    // The poisoned row is the oldest, so it is in every batch the relay claims.
    const poison = randomUUID();
    const now = new Date();
    await app.db
      .insertInto('outbox')
      .values({ id: poison, queue: 'no-such-queue', job_name: 'mystery', payload: JSON.stringify({}), run_at: now, created_at: new Date(now.getTime() - 60_000) })
      .execute();

    // Good rows: registering agents writes events into the outbox.
    for (const id of ['good-1', 'good-2', 'good-3']) expect((await app.call('PUT', `/v1/agents/${id}`, sampleAgent)).status).toBe(201);
    const good = await app.db.selectFrom('outbox').select('id').where('id', '!=', poison).execute();
    expect(good.length).toBeGreaterThanOrEqual(3);

    await waitFor(async () => (await app.db.selectFrom('outbox').select('id').where('id', '!=', poison).where('published_at', 'is', null).execute()).length === 0, 10_000, 'the good rows to be delivered');
    for (const { id } of good) expect(await app.queues.events.getJob(id)).toBeTruthy();

    // The failure bookkeeping survived (it used to roll back with the error).
    await waitFor(async () => (await outboxRow(poison)).attempts >= 1, 5000, 'attempts recorded');
    const failed = await outboxRow(poison);
    expect(failed.published_at).toBeNull();
    expect(failed.last_error).toContain('unknown queue no-such-queue');

    // After 5 failed hand-overs it is parked: still in Postgres, counted in a metric, logged once.
    await waitFor(async () => (await outboxRow(poison)).parked_at !== null, 10_000, 'the row to be parked');
    expect((await outboxRow(poison)).attempts).toBe(5);
    const metrics = await app.call('GET', '/metrics', undefined, { token: null });
    expect(String(metrics.body)).toMatch(/armalo_outbox_parked 1\b/);
    expect(String(metrics.body)).toMatch(/armalo_outbox_pending 0\b/);
    const parkedLogs = app.logs.lines.filter((l) => l.outboxId === poison);
    expect(parkedLogs).toHaveLength(1);
    expect(String(parkedLogs[0]!.msg)).toContain('parked');

    // Parked rows are no longer claimed: later rows still flow, the parked one's attempts stay put.
    expect((await app.call('PUT', '/v1/agents/good-4', sampleAgent)).status).toBe(201);
    await waitFor(async () => (await app.db.selectFrom('outbox').select('id').where('published_at', 'is', null).where('parked_at', 'is', null).execute()).length === 0, 10_000, 'the later rows');
    expect((await outboxRow(poison)).attempts).toBe(5);
  });
});
