import { Redis } from 'ioredis';
import { afterAll, describe, expect } from 'vitest';
import { sampleAgent, TOKEN, waitFor, type TestApp } from './support/app.js';
import { REDIS_URL } from './support/database.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';
import { TcpProxy } from './support/tcp-proxy.js';
import type { FakeSlack } from './support/fake-slack.js';
import { postSigned, slashCommandBody } from './support/slack-requests.js';
import { SLACK_TEST_POLICY } from './support/slack-policy.js';

// `app` (web + worker) reaches Redis through a proxy the test cuts: Redis is gone for it alone,
// never for the shared server. `peer` is a web replica on Redis directly, with a long poll interval,
// so what it learns quickly it learns from the permission channel.
const STALE_AFTER_MS = 1500;
const redisTarget = new URL(REDIS_URL);
const proxy = new TcpProxy(redisTarget.hostname, Number(redisTarget.port || 6379));
let channel: string;
let app: TestApp;
let peer: TestApp;
let direct: Redis;
let slack: FakeSlack;

const decision = (on: TestApp, agentId: string, action = 'crm:write') => decisionOf(on, agentId, action, { amount: 10 });

const it = appTest({
  policy: SLACK_TEST_POLICY,
  slack: true,
  env: { ARMALO_VIEW_STALE_AFTER_MS: String(STALE_AFTER_MS) },
  appOptions: { relayPollMs: 200 },
  // `app` reaches Redis through the proxy.
  beforeStart: async () => ({ REDIS_URL: `redis://127.0.0.1:${await proxy.start()}` }),
});
it.beforeAll(async ({ app: started, startApp, slack: fakeSlack, prefix }) => {
  app = started;
  slack = fakeSlack;
  channel = `${prefix}:permissions`;
  direct = new Redis(REDIS_URL);
  peer = await startApp({ plain: true, env: { ARMALO_ROLE: 'web', ARMALO_VIEW_STALE_AFTER_MS: '60000' }, appOptions: { heartbeatMs: 20_000 } });
});

afterAll(async () => {
  // Redis back for `app`, so that the instances stop without waiting on timeouts.
  await proxy.stop();
  await proxy.start().catch(() => undefined);
  await peer?.stop();
  await app?.stop();
  await proxy.stop();
  direct?.disconnect();
});

describe('the permission channel', () => {
  it('ignores malformed messages (logging once) and still carries valid changes', async () => {
    expect((await app.call('PUT', '/v1/agents/chan-bot', sampleAgent)).status).toBe(201);
    await waitFor(async () => (await decision(peer, 'chan-bot')).decision === 'allow', 5000, 'the peer to see the agent');

    const malformed = [
      '{"t":"changed","agentId":"chan-bot","version":"not-a-number"}',
      '{"t":"changed","agentId":"chan-bot","version":"1.5"}',
      '{"t":"changed","agentId":"chan-bot","version":12}',
      '{"t":"changed","agentId":["chan-bot"],"version":"99"}',
      '{"t":"changed"}',
      '{"t":"ping"}',
      '{"t":"ping","from":{"x":1}}',
      '{"t":"unknown"}',
      '{}',
      'null',
      '[]',
      '[{"t":"ping"}]',
      '42',
      '"changed"',
      'true',
      'not json at all',
      '',
    ];
    for (let round = 0; round < 3; round++) {
      for (const raw of malformed) await direct.publish(channel, raw);
    }

    // Both replicas are still up and answering.
    expect((await decision(peer, 'chan-bot')).decision).toBe('allow');
    expect((await decision(app, 'chan-bot')).decision).toBe('allow');

    // A valid change published after the garbage still reaches the peer through the channel (its
    // own poll runs only every 20 s).
    expect((await app.call('POST', '/v1/agents/chan-bot/actions', { action: 'contain', reason: 'channel test' })).status).toBe(201);
    await waitFor(async () => (await decision(peer, 'chan-bot')).decision === 'deny', 5000, 'the peer to see the contain');
    expect((await decision(peer, 'chan-bot')).reasonCodes).toEqual(['agent_contained']);

    // 51 bad messages, one log line per replica (the next would say how many were suppressed).
    for (const replica of [peer, app]) {
      const lines = replica.logs.lines.filter((l) => String(l.msg).startsWith('ignored a malformed message'));
      expect(lines).toHaveLength(1);
      expect(replica.logs.text()).not.toContain('not-a-number');
    }
  });
});

describe('Redis unreachable for one replica', () => {
  it('contain answers promptly (committed in Postgres), the logs stay quiet, and everything recovers', async () => {
    expect((await app.call('PUT', '/v1/agents/cut-bot', sampleAgent)).status).toBe(201);
    expect((await decision(app, 'cut-bot')).decision).toBe('allow');
    let reconnects = 0;
    app.redis.on('reconnecting', () => reconnects++);
    const logsBefore = app.logs.lines.length;

    await proxy.cut();
    await waitFor(() => app.redis.status !== 'ready', 5000, 'the app to notice Redis is gone');

    // The action is committed in Postgres; the answer does not wait for Redis.
    const started = Date.now();
    const res = await fetch(`${app.url}/v1/agents/cut-bot/actions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'contain', reason: 'redis is down' }),
      signal: AbortSignal.timeout(5000),
    });
    expect(res.status).toBe(201);
    expect(Date.now() - started).toBeLessThan(5000);
    const row = await app.db.selectFrom('agents').select('status').where('id', '=', 'cut-bot').executeTakeFirstOrThrow();
    expect(row.status).toBe('contained');
    // Other replicas learn it by their version poll (the publish was lost); this one fails closed
    // while it cannot vouch for its view.
    expect((await decision(app, 'cut-bot')).decision).toBe('deny');

    // The same from Slack: the acknowledgement comes within Slack's 3 s.
    expect((await app.call('PUT', '/v1/agents/slack-cut-bot', sampleAgent)).status).toBe(201);
    const ack = await postSigned(
      app.url,
      slashCommandBody({ user_id: 'U0ONCALL1', text: 'contain slack-cut-bot redis is down', response_url: slack.responseUrl('cut-ack') }),
    );
    expect(ack.status).toBe(200);
    expect(ack.ms).toBeLessThan(3000);
    expect(JSON.stringify(ack.body)).toContain('Contained slack-cut-bot');
    const slackRow = await app.db.selectFrom('agents').select('status').where('id', '=', 'slack-cut-bot').executeTakeFirstOrThrow();
    expect(slackRow.status).toBe('contained');

    // Readiness probes answer 503 at once: the ping goes on a connection without an offline queue,
    // so probes neither wait for their timeout nor pile up in memory until Redis is back.
    const probes = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const probe = await fetch(`${app.url}/readyz`, { signal: AbortSignal.timeout(5000) });
        return { status: probe.status, body: (await probe.json()) as { status: string; checks: Record<string, string> } };
      }),
    );
    for (const probe of probes) {
      expect(probe.status).toBe(503);
      expect(probe.body).toMatchObject({ status: 'not ready', checks: { postgres: 'ok' } });
      expect(probe.body.checks.redis).not.toBe('ok');
      // The old wiring waited out its 2 s timeout and said "no answer within": the message tells the
      // two apart without timing the probe on a machine that may be loaded.
      expect(probe.body.checks.redis).not.toMatch(/no answer within/);
    }

    // Redis stays away through several reconnect attempts of every connection: the web role,
    // the three BullMQ workers, their queues and the outbox relay write a handful of lines, not
    // one (or more) per attempt.
    await waitFor(() => reconnects >= 8, 15_000, 'eight reconnect attempts');
    const during = app.logs.lines.slice(logsBefore);
    expect(during.length, JSON.stringify(during.map((l) => l.msg))).toBeLessThanOrEqual(12);

    await proxy.start();
    await waitFor(async () => (await app.call('GET', '/readyz')).status === 200, 15_000, 'the app to be ready again');
    expect((await decision(app, 'cut-bot')).reasonCodes).toEqual(['agent_contained']);
  }, 40_000);
});
