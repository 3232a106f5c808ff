import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import type { FakeSlack } from './support/fake-slack.js';
import { appTest } from './support/fixture.js';
import { SLACK_TEST_POLICY } from './support/slack-policy.js';
import { systemClock } from '../src/core/clock.js';
import { MessageLedger } from '../src/notices/ledger.js';
import type { Notice } from '../src/notices/model.js';
import { NoticeService } from '../src/notices/notifier.js';
import { RetryLater } from '../src/notices/platform.js';
import { Recipients } from '../src/notices/recipients.js';
import { SlackPlatform } from '../src/slack/slack-platform.js';
import { createSlackWebClient } from '../src/slack/slack-web.js';

// The message ledger: records by key (the formats written before the upgrade still count) and
// per-key leases, held by single statements, that expire when their holder dies.
let slack: FakeSlack;
let web: TestApp;
let apiUrl: string;

// The web role only: nothing is delivered unless a test asks for it.
const it = appTest({ policy: SLACK_TEST_POLICY, slack: true, env: { ARMALO_ROLE: 'web' } });
it.beforeAll(({ app, slack: fakeSlack }) => {
  web = app;
  slack = fakeSlack;
  apiUrl = `${slack.url}/api/`;
});

const ledger = (leaseMs = 60_000) => new MessageLedger({ db: web.db, clock: systemClock, leaseMs, busyWaitMs: 0, busyRetryMs: 50 });

describe('leases', () => {
  it('a key held by a live worker makes another wait (RetryLater, short); released when the work ends, even when it fails', async () => {
    let finish!: () => void;
    const first = ledger().exclusive('incident:lease-a', () => new Promise<string>((resolve) => (finish = () => resolve('first'))));
    await waitFor(async () => (await web.db.selectFrom('chat_leases').select('key').where('key', '=', 'incident:lease-a').executeTakeFirst()) !== undefined, 2000, 'the lease');
    const refused = await ledger().exclusive('incident:lease-a', async () => 'second').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RetryLater);
    expect((refused as RetryLater).delayMs).toBeLessThan(1000);
    finish();
    expect(await first).toBe('first');
    expect(await ledger().exclusive('incident:lease-a', async () => 'second')).toBe('second');

    await expect(ledger().exclusive('incident:lease-b', async () => Promise.reject(new Error('platform refused')))).rejects.toThrow('platform refused');
    expect(await ledger().exclusive('incident:lease-b', async () => 'after a failure')).toBe('after a failure');
    expect(await web.db.selectFrom('chat_leases').select('key').execute()).toEqual([]);
  });

  it("a killed worker's lease expires and is taken over; a live one is renewed while its work runs", async () => {
    // A worker died holding the key: its row stays, with its expiry.
    await web.db.insertInto('chat_leases').values({ key: 'incident:lease-c', holder: 'killed-worker', expires_at: new Date(Date.now() + 400) }).execute();
    await expect(ledger().exclusive('incident:lease-c', async () => 'too early')).rejects.toBeInstanceOf(RetryLater);
    await new Promise((r) => setTimeout(r, 600));
    expect(await ledger().exclusive('incident:lease-c', async () => 'taken over')).toBe('taken over');

    // Work that outlives the lease period keeps its lease.
    const slow = ledger(600).exclusive('incident:lease-d', () => new Promise((r) => setTimeout(() => r('slow done'), 1500)));
    await new Promise((r) => setTimeout(r, 1000));
    await expect(ledger(600).exclusive('incident:lease-d', async () => 'intruder')).rejects.toBeInstanceOf(RetryLater);
    expect(await slow).toBe('slow done');
  });
});

describe('records', () => {
  it('a message recorded before the upgrade (same key format) is updated, not posted again', async () => {
    await web.call('PUT', '/v1/agents/old-bot', sampleAgent);
    const contained = await web.call('POST', '/v1/agents/old-bot/actions', { action: 'contain', reason: 'before the upgrade' });
    expect(contained.status).toBe(201);
    const incident = await web.db.selectFrom('incidents').select(['id', 'opened_by_action_id']).where('agent_id', '=', 'old-bot').executeTakeFirstOrThrow();
    // What the old Slack notifier wrote after posting the root.
    await web.db.insertInto('chat_messages').values({ key: `slack:incident:${incident.id}`, platform: 'slack', channel: 'C0INCIDENTS', ts: '1700000000.000001', created_at: new Date() }).execute();

    const notices = new NoticeService({
      db: web.db,
      clock: systemClock,
      policy: web.policy,
      approvals: web.approvals,
      ledger: ledger(),
      recipients: new Recipients({ db: web.db, policy: web.policy }),
      platforms: [new SlackPlatform(createSlackWebClient('xoxb-test-token-0123456789', apiUrl))],
    });
    expect(await notices.incidentUpdate({ incidentId: incident.id, actionId: incident.opened_by_action_id, event: 'action' })).toBe('slack posted');
    expect(slack.posts('C0INCIDENTS')).toHaveLength(0);
    const updated = slack.updates().filter((u) => u.args.ts === '1700000000.000001');
    expect(updated).toHaveLength(1);
    expect(JSON.stringify(updated[0]!.args.blocks)).toContain('old-bot');
  });
});

describe('retry later', () => {
  it('Slack 5xx, a 429 (with its Retry-After) and Slack\'s own transient errors are RetryLater; a refusal fails for good', async () => {
    const platform = new SlackPlatform(createSlackWebClient('xoxb-test-token-0123456789', apiUrl));
    const notice: Notice = { kind: 'reply', tone: 'info', title: ['retry check'], fallback: 'retry check', blocks: [] };
    slack.failNext('chat.postMessage', { status: 503 }, { status: 429, retryAfter: 3 }, { error: 'internal_error' }, { error: 'channel_not_found' });
    const [unavailable, limited, internal, refused] = [
      await platform.post('C0RETRY', notice).catch((e: unknown) => e),
      await platform.post('C0RETRY', notice).catch((e: unknown) => e),
      await platform.post('C0RETRY', notice).catch((e: unknown) => e),
      await platform.post('C0RETRY', notice).catch((e: unknown) => e),
    ];
    expect(unavailable).toBeInstanceOf(RetryLater);
    expect(limited).toBeInstanceOf(RetryLater);
    expect((limited as RetryLater).delayMs).toBe(3000);
    expect(internal).toBeInstanceOf(RetryLater);
    expect((refused as Error).name).toBe('UnrecoverableError');
    expect(slack.posts('C0RETRY')).toHaveLength(0);
  });
});
