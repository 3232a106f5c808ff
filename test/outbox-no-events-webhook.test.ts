import { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { REDIS_URL } from './support/database.js';

/**
 * Without ARMALO_EVENTS_WEBHOOK_URL a domain event has nowhere to go: the relay marks its outbox row
 * published without a BullMQ job (it used to add one, which the worker then ended as `no_webhook`:
 * about a third of a registration's CPU). The row stays in Postgres as the record; notices still go.
 */
let app: TestApp;
let prefix: string;
const it = appTest({ appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, prefix: p }) => {
  app = started;
  prefix = p;
});

describe('events with no events webhook configured', () => {
  it('are recorded in the outbox and marked published, with no job queued for them', async () => {
    expect((await app.call('PUT', '/v1/agents/quiet-bot', sampleAgent)).status).toBe(201);
    expect((await app.call('POST', '/v1/agents/quiet-bot/actions', { action: 'contain', reason: 'no webhook here' })).status).toBe(201);
    const rows = () => app.db.selectFrom('outbox').select(['id', 'job_name', 'published_at']).where('queue', '=', 'events').execute();
    await waitFor(async () => {
      const all = await rows();
      return all.length >= 2 && all.every((r) => r.published_at !== null);
    }, 15_000, 'the events to be marked published');
    const events = await rows();
    expect(events.map((r) => r.job_name)).toEqual(expect.arrayContaining(['agent.registered', 'agent.contained']));
    // The contain's other rows (its incident notice) are handed over to their queues as ever.
    const others = await app.db.selectFrom('outbox').select(['id', 'queue', 'job_name', 'published_at']).where('queue', '!=', 'events').execute();
    expect(others.length).toBeGreaterThan(0);
    await waitFor(async () => (await app.db.selectFrom('outbox').select('id').where('queue', '!=', 'events').where('published_at', 'is', null).execute()).length === 0, 15_000, 'the other rows to be handed over');
    const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const queue = new Queue('events', { connection, prefix });
    try {
      for (const r of events) expect(await queue.getJob(r.id), `job ${r.job_name}`).toBeUndefined();
      for (const r of others) {
        const other = new Queue(r.queue, { connection, prefix });
        try {
          // Handed over: its job exists (waiting, or run: completed jobs are kept for a week).
          expect(await other.getJob(r.id), `job ${r.job_name} in ${r.queue}`).toBeDefined();
        } finally {
          await other.close();
        }
      }
    } finally {
      await queue.close();
      await connection.quit();
    }
  });

  it('a burst of registrations leaves no event row unpublished and queues no job for any', async () => {
    const ids = Array.from({ length: 120 }, (_, i) => `quiet-burst-${i}`);
    expect((await Promise.all(ids.map((id) => app.call('PUT', `/v1/agents/${id}`, sampleAgent)))).map((a) => a.status)).toEqual(ids.map(() => 201));
    const unpublished = () => app.db.selectFrom('outbox').select('id').where('published_at', 'is', null).execute();
    await waitFor(async () => (await unpublished()).length === 0, 15_000, 'every row to be published');
    const registered = await app.db.selectFrom('outbox').select(['id', 'published_at', 'created_at']).where('job_name', '=', 'agent.registered').where('published_at', 'is not', null).execute();
    expect(registered.length).toBeGreaterThanOrEqual(ids.length);
    // Written as published (this instance is its own relay and has no webhook): the relay never had to touch them.
    expect(registered.every((r) => r.published_at!.getTime() === r.created_at.getTime())).toBe(true);
    const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const queue = new Queue('events', { connection, prefix });
    try {
      expect(await queue.getJobCounts('waiting', 'delayed', 'completed', 'failed', 'active')).toEqual({ waiting: 0, delayed: 0, completed: 0, failed: 0, active: 0 });
    } finally {
      await queue.close();
      await connection.quit();
    }
  });
});
