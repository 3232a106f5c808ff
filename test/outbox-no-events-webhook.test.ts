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
    const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const queue = new Queue('events', { connection, prefix });
    try {
      for (const r of events) expect(await queue.getJob(r.id), `job ${r.job_name}`).toBeUndefined();
    } finally {
      await queue.close();
      await connection.quit();
    }
  });
});
