import pg from 'pg';
import { afterAll, describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import type { FakeSlack } from './support/fake-slack.js';
import { appTest } from './support/fixture.js';
import { SLACK_TEST_POLICY } from './support/slack-policy.js';

// A slow Slack must not hold database connections: while a notice waits seconds for
// chat.postMessage, no connection of the app sits "idle in transaction" (the notifiers used to hold
// an advisory-lock transaction open across the call). Exclusivity per incident still holds: two
// workers delivering the same incident at once post one root.
let slack: FakeSlack;
let web: TestApp;
let observer: pg.Client;

const it = appTest({ policy: SLACK_TEST_POLICY, slack: true });
it.beforeAll(async ({ startApp, database, slack: fakeSlack }) => {
  slack = fakeSlack;
  web = await startApp({ env: { ARMALO_ROLE: 'web' } });
  // Two workers, as two replicas would run them.
  for (let i = 0; i < 2; i++) await startApp({ env: { ARMALO_ROLE: 'worker' }, appOptions: { relayPollMs: 100 } });
  observer = new pg.Client({ connectionString: database.url });
  await observer.connect();
});

afterAll(async () => {
  await observer?.end();
  // A slow Slack no more, so the instances stop at once.
  slack.delays.clear();
});

/** Connections of the test database inside a transaction that has been open for over half a second and is waiting on its client. */
async function idleInTransaction(): Promise<{ pid: number; query: string }[]> {
  const res = await observer.query<{ pid: number; query: string }>(
    `select pid, query from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid()
        and state like 'idle in transaction%' and xact_start < now() - interval '500 milliseconds'`,
  );
  return res.rows;
}

const roots = (agentId: string) => slack.posts('C0INCIDENTS').filter((p) => !p.args.thread_ts && JSON.stringify(p.args.blocks).includes(agentId));
const lines = (reason: string) => slack.posts('C0INCIDENTS').filter((p) => p.args.thread_ts && JSON.stringify(p.args).includes(reason));

describe('a slow Slack holds no database connection', () => {
  it('while chat.postMessage takes 3 s, no connection is idle in transaction', async () => {
    await web.call('PUT', '/v1/agents/slow-bot', sampleAgent);
    slack.delays.set('chat.postMessage', 3000);
    try {
      const contained = await web.call('POST', '/v1/agents/slow-bot/actions', { action: 'contain', reason: 'slow platform check' });
      expect(contained.status).toBe(201);
      await waitFor(() => slack.calls.some((c) => c.method === 'chat.postMessage' && JSON.stringify(c.args.blocks).includes('slow-bot')), 10_000, 'the notice to reach Slack');
      const arrived = slack.calls.find((c) => c.method === 'chat.postMessage' && JSON.stringify(c.args.blocks).includes('slow-bot'))!.at;
      // Poll for the whole time Slack takes to answer.
      const seen: { pid: number; query: string }[] = [];
      let polls = 0;
      while (Date.now() < arrived + 2800) {
        seen.push(...(await idleInTransaction()));
        polls++;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(polls).toBeGreaterThan(10);
      expect(seen).toEqual([]);
    } finally {
      slack.delays.delete('chat.postMessage');
    }
    await waitFor(async () => (await web.db.selectFrom('chat_messages').select('key').where('key', 'like', 'slack:incident:%').execute()).length === 1, 5000, 'the root to be recorded');
    expect(roots('slow-bot')).toHaveLength(1);
  });

  it('two workers delivering the same incident at once post one root, and the later step lands in its thread', async () => {
    await web.call('PUT', '/v1/agents/twin-bot', sampleAgent);
    slack.delays.set('chat.postMessage', 1500);
    try {
      // Two jobs for one incident, one right after the other: each worker takes one.
      const [contained, narrowed] = await Promise.all([
        web.call('POST', '/v1/agents/twin-bot/actions', { action: 'contain', reason: 'twin check' }),
        new Promise((r) => setTimeout(r, 20)).then(() => web.call('POST', '/v1/agents/twin-bot/actions', { action: 'narrow', scopes: ['crm:write'], reason: 'twin check too' })),
      ]);
      expect(contained.status).toBe(201);
      expect(narrowed.status).toBe(201);
      // A generous bound: on a loaded machine the second job waits out the first one's slow posts several times.
      await waitFor(() => lines('twin check too').length >= 1, 40_000, 'the second step in the thread');
    } finally {
      slack.delays.delete('chat.postMessage');
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(roots('twin-bot')).toHaveLength(1);
    expect(lines('twin check too')).toHaveLength(1);
    expect(lines('twin check too')[0]!.args.thread_ts).toBe((await web.db.selectFrom('chat_messages').select('ts').where('key', 'like', 'slack:incident:%').orderBy('created_at', 'desc').executeTakeFirstOrThrow()).ts);
    // Nothing is left holding the incident once the jobs are done.
    await waitFor(async () => (await web.db.selectFrom('chat_leases').select('key').execute()).length === 0, 5000, 'the leases to be released');
  }, 60_000);
});
