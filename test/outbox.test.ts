import { fork, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect } from 'vitest';
import { sampleAgent, waitFor, TOKEN, OTHER_TOKEN, type TestApp } from './support/app.js';
import { REDIS_URL } from './support/database.js';
import { appTest, type FreshStore, type StartApp } from './support/fixture.js';
import { TcpProxy } from './support/tcp-proxy.js';
import type { WebhookReceiver } from './support/webhook-receiver.js';
import { verifySignature } from '../src/webhooks/signature.js';
import { countUnpublished } from '../src/outbox/outbox.repository.js';

const SECRET = 'whsec_test_0123456789abcdef';
let receiver: WebhookReceiver;
let startApp: StartApp;
let freshStore: FreshStore;

/** Events committed but not yet handed to the queue (chat notices are outbox rows too; not counted here). */
async function pendingEvents(app: TestApp): Promise<number> {
  const rows = await app.db.selectFrom('outbox').select('id').where('queue', '=', 'events').where('published_at', 'is', null).execute();
  return rows.length;
}
let webhookUrl: string;

/** Each test gets a database and queue prefix of its own, and starts instances on them. */
async function setup(env: Record<string, string> = {}) {
  const { database, prefix } = await freshStore();
  const start = (extra: Record<string, string> = {}): Promise<TestApp> => startApp({ databaseUrl: database.url, prefix, env: { ...env, ...extra } });
  return { database, prefix, start };
}

// Events go to the webhook receiver; short locks and stall checks, so a killed worker's job is taken over within seconds.
const it = appTest({ events: { secret: SECRET }, appOptions: { relayPollMs: 200, worker: { lockDurationMs: 2000, stalledIntervalMs: 1000 } } });
it.beforeAll(({ receiver: fakeReceiver, startApp: start, freshStore: store }) => {
  receiver = fakeReceiver;
  webhookUrl = receiver.url();
  startApp = start;
  freshStore = store;
});

afterEach(() => {
  receiver.requests.length = 0;
  receiver.respond = () => 200;
});

describe('outbox to signed event webhook', () => {
  it('delivers every event, signed, with the event id as delivery id, retrying through 500s', async () => {
    const { start } = await setup();
    const app = await start();
    receiver.respond = (_req, i) => (i < 2 ? 500 : 200);
    await app.call('PUT', '/v1/agents/hook-bot', sampleAgent);
    await waitFor(() => receiver.requests.length >= 3, 15_000, 'three delivery attempts');
    const ids = receiver.deliveryIds();
    expect(new Set(ids).size).toBe(1);
    const [first] = receiver.events();
    expect(first).toMatchObject({ type: 'agent.registered', data: { agentId: 'hook-bot', actor: 'api:platform' } });
    for (const req of receiver.requests) {
      const check = verifySignature(SECRET, req.body, String(req.headers['x-armalo-signature']), Math.floor(Date.now() / 1000));
      expect(check.ok).toBe(true);
      expect(req.headers['x-armalo-event']).toBe('agent.registered');
    }
    expect(verifySignature('another-secret-0123456789', receiver.requests[2]!.body, String(receiver.requests[2]!.headers['x-armalo-signature']), Math.floor(Date.now() / 1000)).ok).toBe(false);
    // Retries back off: the third attempt comes at least 1 s + 2 s after the first.
    expect(receiver.requests[2]!.at - receiver.requests[0]!.at).toBeGreaterThanOrEqual(2500);

    await waitFor(async () => (await app.db.selectFrom('event_deliveries').selectAll().execute()).length > 0, 2000, 'the receipt');
    const receipts = await app.db.selectFrom('event_deliveries').selectAll().execute();
    expect(receipts).toHaveLength(1);
    expect(receipts[0]).toMatchObject({ event_id: ids[0], status_code: 200, attempts: 3 });
  });

  it('a delivery the receiver refuses for good (4xx) is not retried, and is logged and counted', async () => {
    const { start } = await setup();
    const app = await start();
    receiver.respond = () => 400;
    await app.call('PUT', '/v1/agents/refused-bot', sampleAgent);
    await waitFor(() => app.logs.lines.some((l) => l.msg === 'job failed for good'), 5000, 'the final failure to be logged');
    await new Promise((r) => setTimeout(r, 1500));
    expect(receiver.requests).toHaveLength(1);
    const line = app.logs.lines.find((l) => l.msg === 'job failed for good')!;
    expect(line).toMatchObject({ level: 'error', queue: 'events', job: 'agent.registered' });
    expect(String(line.err)).toContain('answered 400');
    const metrics = await app.call('GET', '/metrics');
    expect(metrics.body).toMatch(/armalo_jobs_failed_total\{queue="events"\} 1\b/);
    expect(await app.db.selectFrom('event_deliveries').selectAll().execute()).toHaveLength(0);
  });

  it('keeps events in Postgres while no worker runs, and delivers each once when one starts', async () => {
    const { start, database } = await setup();
    const web = await start({ ARMALO_ROLE: 'web' });
    await web.call('PUT', '/v1/agents/queued-bot', sampleAgent);
    await web.call('POST', '/v1/agents/queued-bot/actions', { action: 'contain', reason: 'worker is down' }, { token: OTHER_TOKEN });
    await web.call('POST', '/v1/agents/queued-bot/actions', { action: 'restore', reason: 'ok' }, { token: TOKEN });
    await new Promise((r) => setTimeout(r, 500));
    expect(receiver.requests).toHaveLength(0);
    expect(await pendingEvents(web)).toBe(3);

    await start({ ARMALO_ROLE: 'worker' });
    await waitFor(() => receiver.requests.length >= 3, 10_000, 'three events');
    await new Promise((r) => setTimeout(r, 1000));
    // Deliveries run concurrently, so arrival order is not promised; createdAt orders them.
    const events = receiver.events().sort((x, y) => (x as any).createdAt.localeCompare((y as any).createdAt));
    expect(events.map((e) => e.type)).toEqual(['agent.registered', 'agent.contained', 'agent.restored']);
    expect(new Set(receiver.deliveryIds()).size).toBe(3);
    expect(events[1]!.data).toMatchObject({ action: { actor: 'api:automation', reason: 'worker is down' } });
    expect(await countUnpublished(web.db)).toBe(0);
    expect(database.url).toContain('armalo_test_');
  });

  it('keeps events while the worker cannot reach Redis, and delivers them when it can', async () => {
    const proxy = new TcpProxy('127.0.0.1', Number(new URL(REDIS_URL).port || 6379));
    const port = await proxy.start();
    try {
      const { start } = await setup();
      const web = await start({ ARMALO_ROLE: 'web' });
      await start({ ARMALO_ROLE: 'worker', REDIS_URL: `redis://127.0.0.1:${port}` });
      await proxy.cut();
      await web.call('PUT', '/v1/agents/redis-bot', sampleAgent);
      await web.call('POST', '/v1/agents/redis-bot/actions', { action: 'narrow', scopes: ['crm:*'], reason: 'redis is down' });
      await new Promise((r) => setTimeout(r, 1000));
      expect(receiver.requests).toHaveLength(0);
      expect(await pendingEvents(web)).toBe(2);
      await proxy.start();
      await waitFor(() => receiver.requests.length >= 2, 15_000, 'events after Redis is back');
      await new Promise((r) => setTimeout(r, 500));
      expect(receiver.events().map((e) => e.type).sort()).toEqual(['agent.narrowed', 'agent.registered']);
    } finally {
      await proxy.stop();
    }
  });

  it('a worker killed mid-delivery loses nothing: another worker delivers it with the same delivery id', async () => {
    const { start, database, prefix } = await setup();
    const web = await start({ ARMALO_ROLE: 'web' });
    receiver.respond = (_req, i) => (i === 0 ? 'hang' : 200);
    const child: ChildProcess = fork(new URL('./support/worker-child.ts', import.meta.url).pathname, [], {
      execArgv: ['--import', 'tsx'],
      env: {
        ...process.env,
        NODE_ENV: 'test',
        ARMALO_ROLE: 'worker',
        DATABASE_URL: database.url,
        REDIS_URL,
        PORT: '0',
        ARMALO_QUEUE_PREFIX: prefix,
        ARMALO_EVENTS_WEBHOOK_URL: webhookUrl,
        ARMALO_EVENTS_WEBHOOK_SECRET: SECRET,
        TEST_LOCK_MS: '2000',
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve());
        child.once('exit', (code) => reject(new Error(`worker child exited with ${code}`)));
      });
      await web.call('PUT', '/v1/agents/crash-bot', sampleAgent);
      await waitFor(() => receiver.requests.length >= 1, 10_000, 'the first delivery to start');
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    // A new worker takes over the stalled job once the dead worker's lock expires.
    await start({ ARMALO_ROLE: 'worker' });
    await waitFor(() => receiver.requests.length >= 2, 20_000, 'redelivery by the second worker');
    await new Promise((r) => setTimeout(r, 1500));
    const ids = receiver.deliveryIds();
    expect(ids).toHaveLength(2);
    expect(new Set(ids).size).toBe(1);
    const receipts = await web.db.selectFrom('event_deliveries').selectAll().execute();
    expect(receipts).toHaveLength(1);
    // A child process compiles the app with tsx on start: slow on a loaded CI machine. Every wait
    // above is for a condition, so a longer bound costs nothing when the machine is quiet.
  }, 60_000);
});
