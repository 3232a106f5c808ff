import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';

/**
 * The relay wakes on the notification every outbox write sends on commit (LISTEN), not on the
 * writer's call in the same process (which made a second, empty pass per commit) nor on its poll:
 * here the poll is ten minutes, so a row published within seconds was published by the notification.
 */
let app: TestApp;
const it = appTest({ appOptions: { relayPollMs: 600_000 } });
it.beforeAll(({ app: started }) => {
  app = started;
});

describe('the outbox relay while it listens', () => {
  it('publishes what a registration and a contain wrote within seconds, woken by their commits', async () => {
    expect((await app.call('PUT', '/v1/agents/wake-bot', sampleAgent)).status).toBe(201);
    expect((await app.call('POST', '/v1/agents/wake-bot/actions', { action: 'contain', reason: 'wake test' })).status).toBe(201);
    const unpublished = () => app.db.selectFrom('outbox').select(['job_name']).where('published_at', 'is', null).where('run_at', '<=', new Date()).execute();
    await waitFor(async () => (await unpublished()).length === 0, 10_000, 'the rows to be published without a poll');
    const jobs = await app.db.selectFrom('outbox').select('job_name').execute();
    expect(jobs.map((j) => j.job_name)).toEqual(expect.arrayContaining(['agent.registered', 'agent.contained']));
  });
});
