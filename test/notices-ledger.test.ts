import { Redis } from 'ioredis';
import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import type { FakeSlack } from './support/fake-slack.js';
import { appTest } from './support/fixture.js';
import { REDIS_URL, testPrefix } from './support/database.js';
import { SLACK_TEST_POLICY } from './support/slack-policy.js';
import { systemClock } from '../src/core/clock.js';
import { randomUUID } from 'node:crypto';
import type { Job } from 'bullmq';
import { notify } from '../jobs/notify.job.js';
import { LOOKUP_GIVE_UP_MS, MessageLedger, SENDING_MARKER_MS } from '../src/notices/ledger.js';
import type { Notice } from '../src/notices/model.js';
import { NoticeService } from '../src/notices/notifier.js';
import { RetryLater } from '../src/notices/platform.js';
import { Recipients } from '../src/notices/recipients.js';
import { PostGate } from '../src/notices/post-gate.js';
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

describe('leases tied to the job lock', () => {
  it("a lease taken inside a job is taken over as soon as that job's BullMQ lock is gone (its worker died), not after the lease", async () => {
    const redis = new Redis(REDIS_URL);
    const owner = (lockKey: string, token: string) => ({ lockKey, token, holds: async (k: string, t: string) => (await redis.get(k)) === t });
    const lockKey = `${testPrefix()}:notify:card-1:lock`;
    await redis.set(lockKey, 'token-1', 'PX', 60_000);
    let finish!: () => void;
    const first = ledger().exclusive('approval:lease-lock', () => new Promise<string>((resolve) => (finish = () => resolve('first'))), owner(lockKey, 'token-1'));
    await waitFor(async () => (await web.db.selectFrom('chat_leases').select('key').where('key', '=', 'approval:lease-lock').executeTakeFirst()) !== undefined, 2000, 'the lease');
    const other = owner(`${testPrefix()}:notify:card-2:lock`, 'token-2');
    // Its job still holds its lock: the other job waits (RetryLater).
    await expect(ledger().exclusive('approval:lease-lock', async () => 'too early', other)).rejects.toBeInstanceOf(RetryLater);
    // Its worker died: BullMQ's lock runs out (here: deleted), and the lease (a minute here) is taken over at once.
    await redis.del(lockKey);
    expect(await ledger().exclusive('approval:lease-lock', async () => 'taken over', other)).toBe('taken over');
    // The old holder's release (had it lived) does not free the new holder's lease.
    finish();
    expect(await first).toBe('first');
    redis.disconnect();
  });

  it('a notify job passes its lock down to the lease (a dead holder is taken over); without a token, the lease is waited out', async () => {
    const redis = new Redis(REDIS_URL);
    const requestId = randomUUID();
    // A dead job's lease on the card's key: its lock (never set here) is gone, its lease runs a minute.
    await web.db.insertInto('chat_leases').values({ key: `approval:${requestId}`, holder: `dead-host:1:x ${testPrefix()}:notify:dead:lock dead-token`, expires_at: new Date(Date.now() + 60_000) }).execute();
    const notices = new NoticeService({ db: web.db, clock: systemClock, policy: web.policy, approvals: web.approvals, ledger: ledger(), recipients: new Recipients({ db: web.db, policy: web.policy }), platforms: [] });
    const delayed: number[] = [];
    const job = { id: 'card-3', name: 'approval-cards', data: { requestId }, queueQualifiedName: `${testPrefix()}:notify`, timestamp: Date.now(), moveToDelayed: async (at: number) => void delayed.push(at) } as unknown as Job;
    await expect(notify(job, undefined, { notices, redis })).rejects.toBeInstanceOf(RetryLater);
    // (The request does not exist: inside the lease, the use case answers 'gone'.)
    expect(await notify(job, 'token-3', { notices, redis })).toBe('gone');
    expect(delayed).toEqual([]);
    redis.disconnect();
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

describe('a post that may have happened (Slack takes no idempotency key)', () => {
  const platform = () => new SlackPlatform(createSlackWebClient('xoxb-test-token-0123456789', apiUrl));
  const notice = (title: string): Notice => ({ kind: 'reply', tone: 'info', title: [title], fallback: title, blocks: [] });
  /** A worker that dies right after Slack answered: the post happened, its record did not. */
  const diesAfterPost = async (key: string, to: { channel: string } | { thread: { channel: string; id: string } }, text: string) => {
    const slackPlatform = platform();
    const killed = new Error('killed after Slack answered');
    await expect(
      ledger().postOnce(key, slackPlatform, to, async () => {
        await ('thread' in to ? slackPlatform.replyInThread(to.thread, notice(text), { key }) : slackPlatform.post(to.channel, notice(text), { key }));
        throw killed;
      }),
    ).rejects.toBe(killed);
  };
  const calls = (method: string) => slack.calls.filter((c) => c.method === method).length;

  it('carries its ledger key as Slack message metadata, and a first post looks nothing up', async () => {
    const before = calls('conversations.history');
    const posted = await ledger().postOnce('slack:test:meta-1', platform(), { channel: 'C0META' }, () => platform().post('C0META', notice('meta one'), { key: 'slack:test:meta-1' }));
    expect(posted.posted).toBe(true);
    expect(slack.posts('C0META')[0]!.args.metadata).toEqual({ event_type: 'armalo_notice', event_payload: { ledger_key: 'slack:test:meta-1' } });
    expect(calls('conversations.history')).toBe(before);
    expect(await web.db.selectFrom('chat_leases').select('key').where('key', 'like', 'sending:%').execute()).toEqual([]);
  });

  it('a retry after a death between Slack\'s answer and the record finds the message and does not post again (channel, thread, DM)', async () => {
    // A channel.
    await diesAfterPost('slack:test:retry-chan', { channel: 'C0RETRYLOOK' }, 'channel notice');
    expect(slack.posts('C0RETRYLOOK')).toHaveLength(1);
    const again = await ledger().postOnce('slack:test:retry-chan', platform(), { channel: 'C0RETRYLOOK' }, () => platform().post('C0RETRYLOOK', notice('channel notice'), { key: 'slack:test:retry-chan' }));
    expect(again).toEqual({ ref: { channel: 'C0RETRYLOOK', id: slack.posts('C0RETRYLOOK')[0]!.answer!.ts }, posted: false });
    expect(slack.posts('C0RETRYLOOK')).toHaveLength(1);

    // A thread reply (conversations.replies), with other replies in the thread.
    const root = await platform().post('C0RETRYTHREAD', notice('root'));
    await platform().replyInThread(root, notice('other line'), { key: 'slack:test:other-line' });
    await diesAfterPost('slack:test:retry-line', { thread: root }, 'thread line');
    const line = await ledger().postOnce('slack:test:retry-line', platform(), { thread: root }, () => platform().replyInThread(root, notice('thread line'), { key: 'slack:test:retry-line' }));
    expect(line.posted).toBe(false);
    expect(slack.posts('C0RETRYTHREAD')).toHaveLength(3);
    expect(line.ref.id).toBe(slack.posts('C0RETRYTHREAD')[2]!.answer!.ts);

    // A person's DM (posted to the user id; looked up in the DM conversations.open answers).
    await diesAfterPost('slack:test:retry-dm', { channel: 'U0RETRYDM' }, 'dm card');
    const dm = await ledger().postOnce('slack:test:retry-dm', platform(), { channel: 'U0RETRYDM' }, () => platform().post('U0RETRYDM', notice('dm card'), { key: 'slack:test:retry-dm' }));
    expect(dm.posted).toBe(false);
    expect(slack.posts('U0RETRYDM')).toHaveLength(1);
    // Each is recorded now, and no marker is left.
    const rows = await web.db.selectFrom('chat_messages').select('key').where('key', 'in', ['slack:test:retry-chan', 'slack:test:retry-line', 'slack:test:retry-dm']).execute();
    expect(rows).toHaveLength(3);
    expect(await web.db.selectFrom('chat_leases').select('key').where('key', 'like', 'sending:%').execute()).toEqual([]);
  });

  it('a retry whose earlier post never reached Slack posts it (once); after a 429 it looks nothing up first', async () => {
    const lookups = () => calls('conversations.history') + calls('conversations.open');
    const before = lookups();
    slack.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
    const first = await ledger()
      .postOnce('slack:test:never', platform(), { channel: 'C0NEVER' }, () => platform().post('C0NEVER', notice('never'), { key: 'slack:test:never' }))
      .catch((e: unknown) => e);
    expect(first).toBeInstanceOf(RetryLater);
    // Slack refused it outright: no "sending" marker stays behind to make the retry look first.
    expect(await web.db.selectFrom('chat_leases').select('key').where('key', '=', 'sending:slack:test:never').execute()).toEqual([]);
    const second = await ledger().postOnce('slack:test:never', platform(), { channel: 'C0NEVER' }, () => platform().post('C0NEVER', notice('never'), { key: 'slack:test:never' }));
    expect(second.posted).toBe(true);
    expect(slack.posts('C0NEVER')).toHaveLength(1);
    expect(lookups()).toBe(before);

    // A 5xx leaves the outcome unknown: the marker stays, and the retry looks before it posts.
    slack.failNext('chat.postMessage', { status: 503 });
    const unknown = await ledger()
      .postOnce('slack:test:unknown', platform(), { channel: 'C0UNKNOWN' }, () => platform().post('C0UNKNOWN', notice('unknown'), { key: 'slack:test:unknown' }))
      .catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(RetryLater);
    expect(await web.db.selectFrom('chat_leases').select('key').where('key', '=', 'sending:slack:test:unknown').execute()).toHaveLength(1);
    const historyBefore = calls('conversations.history');
    const retried = await ledger().postOnce('slack:test:unknown', platform(), { channel: 'C0UNKNOWN' }, () => platform().post('C0UNKNOWN', notice('unknown'), { key: 'slack:test:unknown' }));
    expect(retried.posted).toBe(true);
    expect(calls('conversations.history')).toBe(historyBefore + 1);
    expect(slack.posts('C0UNKNOWN')).toHaveLength(1);
  });

  it('in a channel Slack slowed down, a message waiting its turn and one arriving behind it are sent back without calling Slack or leaving a trace, and post in order at their turns', async () => {
    const redis = new Redis(REDIS_URL);
    const prefix = testPrefix();
    const paced = new SlackPlatform(createSlackWebClient('xoxb-test-token-0123456789', apiUrl), new PostGate(redis, prefix, 'slack'));
    const to = { channel: 'C0PACED' };
    const send = (key: string) => ledger().postOnce(key, paced, to, () => paced.post('C0PACED', notice(key), { key }));
    const attempts = () => slack.calls.filter((c) => c.method.startsWith('chat.postMessage') && c.args.channel === 'C0PACED').length;
    const traces = async (key: string) =>
      (await web.db.selectFrom('chat_leases').select('key').where('key', '=', `sending:${key}`).execute()).length +
      (await web.db.selectFrom('chat_messages').select('key').where('key', '=', key).execute()).length;

    slack.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
    const refused = await send('slack:test:paced-a').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RetryLater);
    expect(attempts()).toBe(1);
    // Asked again before its turn, and a newcomer behind it: both wait without calling Slack.
    const early = await send('slack:test:paced-a').catch((e: unknown) => e);
    const behind = await send('slack:test:paced-b').catch((e: unknown) => e);
    expect(early).toBeInstanceOf(RetryLater);
    expect(behind).toBeInstanceOf(RetryLater);
    expect((early as RetryLater).notDone && (behind as RetryLater).notDone).toBe(true);
    expect((early as RetryLater).delayMs).toBeLessThanOrEqual(1000);
    expect((behind as RetryLater).delayMs).toBeGreaterThan((early as RetryLater).delayMs);
    expect(attempts()).toBe(1);
    expect(await traces('slack:test:paced-a')).toBe(0);
    expect(await traces('slack:test:paced-b')).toBe(0);

    // At their turns they post, the refused one first.
    for (const key of ['slack:test:paced-a', 'slack:test:paced-b']) {
      await waitFor(async () => (await paced.turnWait(to, key)) === 0, 5000, `the turn of ${key}`);
      expect((await send(key)).posted).toBe(true);
    }
    expect(slack.posts('C0PACED').map((p) => p.args.metadata.event_payload.ledger_key)).toEqual(['slack:test:paced-a', 'slack:test:paced-b']);
    expect(attempts()).toBe(3);
    // The turns were kept in Redis under the deployment's prefix, and given back once used.
    expect(await redis.hlen(`${prefix}:slack-pace:C0PACED:turns`)).toBe(0);
    for (const k of await redis.keys(`${prefix}:*`)) await redis.del(k);
    redis.disconnect();
  });

  it('a lookup answered 429 or 5xx retries the job later and posts nothing; a refused lookup, or one failing past the give-up time, posts', async () => {
    await diesAfterPost('slack:test:lookup-fails', { channel: 'C0LOOKFAIL' }, 'lookup fails');
    slack.failNext('conversations.history', { status: 429, retryAfter: 2 }, { status: 503 });
    const retry = () => ledger().postOnce('slack:test:lookup-fails', platform(), { channel: 'C0LOOKFAIL' }, () => platform().post('C0LOOKFAIL', notice('lookup fails'), { key: 'slack:test:lookup-fails' }));
    const limited = await retry().catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(RetryLater);
    expect((limited as RetryLater).delayMs).toBe(2000);
    expect(await retry().catch((e: unknown) => e)).toBeInstanceOf(RetryLater);
    expect(slack.posts('C0LOOKFAIL')).toHaveLength(1);
    // Slack answers again: found, not posted twice.
    expect((await retry()).posted).toBe(false);
    expect(slack.posts('C0LOOKFAIL')).toHaveLength(1);

    // The app lacks the history scope: the lookup can never succeed, so the notice is posted (a
    // possible duplicate is better than a lost notice).
    await diesAfterPost('slack:test:no-scope', { channel: 'C0NOSCOPE' }, 'no scope');
    slack.failNext('conversations.history', { error: 'missing_scope' });
    const posted = await ledger().postOnce('slack:test:no-scope', platform(), { channel: 'C0NOSCOPE' }, () => platform().post('C0NOSCOPE', notice('no scope'), { key: 'slack:test:no-scope' }));
    expect(posted.posted).toBe(true);
    expect(slack.posts('C0NOSCOPE')).toHaveLength(2);

    // Lookups failing for longer than LOOKUP_GIVE_UP_MS after the marker: posted without it.
    await web.db.insertInto('chat_leases').values({ key: 'sending:slack:test:old-marker', holder: 'sending', expires_at: new Date(Date.now() + SENDING_MARKER_MS - LOOKUP_GIVE_UP_MS - 60_000) }).execute();
    slack.failNext('conversations.history', { status: 500 });
    const late = await ledger().postOnce('slack:test:old-marker', platform(), { channel: 'C0OLDMARK' }, () => platform().post('C0OLDMARK', notice('old marker'), { key: 'slack:test:old-marker' }));
    expect(late.posted).toBe(true);
    expect(slack.posts('C0OLDMARK')).toHaveLength(1);
  });
});
