import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { PostGate } from '../src/notices/post-gate.js';
import { REDIS_URL, testPrefix } from './support/database.js';

// Turns for posting into rate-limited Slack channels, kept in Redis (real Redis, a clock the test
// moves) so that every worker of every replica shares them.
const redis = new Redis(REDIS_URL);
const prefixes: string[] = [];

afterAll(async () => {
  for (const prefix of prefixes) for (const key of await redis.keys(`${prefix}:*`)) await redis.del(key);
  redis.disconnect();
});

/** Two gates on one prefix, as two replicas would hold them, and the clock they read. */
function gates() {
  let t = 1_900_000_000_000;
  const prefix = testPrefix();
  prefixes.push(prefix);
  const now = () => t;
  return { a: new PostGate(redis, prefix, 'slack', now, 1000), b: new PostGate(redis, prefix, 'slack', now, 1000), advance: (ms: number) => (t += ms), prefix };
}
const waits = async (gate: PostGate, channel: string, key: string) => (await gate.waitFor(channel, key)).wait;

describe('PostGate: turns in a rate-limited Slack channel', () => {
  it('a message posts at once where no refused message waits its turn', async () => {
    const { a, b, advance } = gates();
    for (let i = 0; i < 10; i++) expect(await waits(i % 2 ? a : b, i % 2 ? 'C1' : 'C2', `k${i}`)).toBe(0);
    await a.limited('C1', 'refused', 3000);
    // Another channel is not held back by C1's queue.
    for (let i = 0; i < 5; i++) expect(await waits(b, 'C2', `m${i}`)).toBe(0);
    // Once the refused message has had its turn and posted, C1 takes new messages at once again.
    advance(3000);
    expect(await b.waitFor('C1', 'refused')).toEqual({ wait: 0, turn: true });
    await b.posted('C1', 'refused');
    expect(await a.waitFor('C1', 'fresh')).toEqual({ wait: 0, turn: false });
  });

  it('refused messages get turns one slot apart, none before its Retry-After; every replica sees the same turns', async () => {
    const { a, b, advance } = gates();
    const given = [];
    for (const [gate, key] of [[a, 'k0'], [b, 'k1'], [a, 'k2'], [b, 'k3']] as const) given.push(await gate.limited('C1', key, 2000));
    expect(given).toEqual([2000, 3000, 4000, 5000]);
    // Another channel's turns are its own.
    expect(await a.limited('C2', 'k0', 1000)).toBe(1000);
    // Asking before its turn, on either replica: the same turn, not a later one.
    advance(500);
    expect(await waits(a, 'C1', 'k2')).toBe(3500);
    expect(await waits(b, 'C1', 'k2')).toBe(3500);
    advance(1500);
    expect(await waits(b, 'C1', 'k0')).toBe(0);
    expect(await waits(a, 'C1', 'k1')).toBe(1000);
    // Refused again at its turn (another client used the channel): a new turn after the last one.
    expect(await b.limited('C1', 'k0', 1000)).toBe(4000);
  });

  it('a new message joins the end of the queue where refused messages still wait, and asking again keeps its place', async () => {
    const { a, b, advance } = gates();
    expect(await a.limited('C1', 'r0', 2000)).toBe(2000);
    expect(await waits(b, 'C1', 'n1')).toBe(3000);
    expect(await waits(a, 'C1', 'n2')).toBe(4000);
    expect(await waits(a, 'C1', 'n1')).toBe(3000);
    // A refusal after them waits behind them.
    expect(await b.limited('C1', 'r1', 1000)).toBe(5000);
    advance(3000);
    // Its turn has come: asked twice before the post (the ledger, then the post), both say go.
    expect(await a.waitFor('C1', 'n1')).toEqual({ wait: 0, turn: true });
    expect(await b.waitFor('C1', 'n1')).toEqual({ wait: 0, turn: true });
    await a.posted('C1', 'n1');
    expect(await waits(b, 'C1', 'n2')).toBe(1000);
    // Turns are still given out (r1 at +5 s): a newcomer goes after them.
    expect(await waits(a, 'C1', 'n3')).toBe(3000);
  });

  it('a longer Retry-After pushes the turns after it; a channel quiet for a minute starts afresh', async () => {
    const { a, advance, prefix } = gates();
    expect(await a.limited('C1', 'a', 1000)).toBe(1000);
    expect(await a.limited('C1', 'b', 5000)).toBe(5000);
    expect(await a.limited('C1', 'c', 1000)).toBe(6000);
    // Redis forgets the channel's turns a minute after the last one.
    const ttl = await redis.pttl(`${prefix}:slack-pace:C1:turns`);
    expect(ttl).toBeGreaterThan(60_000);
    expect(ttl).toBeLessThanOrEqual(66_000);
    await redis.del(`${prefix}:slack-pace:C1:turns`, `${prefix}:slack-pace:C1:next`);
    advance(120_000);
    expect(await a.limited('C1', 'd', 1000)).toBe(1000);
  });

  it('without Redis, a message is posted rather than held (pacing never loses a notice)', async () => {
    const dead = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    const gate = new PostGate(dead, testPrefix(), 'slack');
    expect(await gate.waitFor('C1', 'k')).toEqual({ wait: 0, turn: false });
    expect(await gate.limited('C1', 'k', 2000)).toBe(2000);
    dead.disconnect();
  });
});
