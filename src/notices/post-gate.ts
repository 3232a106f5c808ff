import type { Redis } from 'ioredis';
import { RetryLater, type PlatformName, type PostTarget } from './platform.js';

/**
 * The pace of posts into a channel once the platform has said "slow down" there: one a second.
 * Slack allows about one message a second per channel (short bursts allowed), which is what its
 * 429s enforce. Teams documents per-conversation limits that allow a bot short bursts of several a
 * second but fewer than one a second over an hour; its exact values may change, so the pace starts
 * only when it answers 429, and its Retry-After pushes the turns back further.
 */
export const POST_SLOT_MS = 1000;
/** A channel's turns are forgotten this long after its last one (turns nobody came back for go with them). */
const KEEP_MS = 60_000;

/**
 * Turns for posting into channels a chat platform has rate limited, kept in Redis so that every worker of
 * every replica takes the same turns. Without them, every card job of a burst retried after the
 * same Retry-After, posted into the same channels, and was refused again: 500 requests under a
 * limit of one post a second made 13,000 chat.postMessage calls in 40 s. With turns kept per
 * process, a job retried on another worker was a stranger there and queued again at the end.
 *
 * A message the platform refuses (Slack or Teams, 429) gets a turn in that channel, POST_SLOT_MS
 * after the previous turn and never before the Retry-After, and waits for it without calling the
 * platform. A new message for a channel where turns are still to come joins the end of that queue
 * at once: posted now, it would be refused (the turns ahead of it use the channel's allowance) or
 * would overtake older messages.
 * Where no turn is to come, a message posts at once (never held back on a guess). A turn stays
 * until its message is posted, so asking twice before the post answers the same.
 *
 * Pacing is a courtesy to the platform, never a reason to lose a notice: if Redis does not answer,
 * the message is posted (the platform's own 429 is the last word).
 */
export class PostGate {
  constructor(
    private readonly redis: Redis,
    /** The deployment's Redis key prefix (ARMALO_QUEUE_PREFIX): replicas sharing it share turns. */
    private readonly prefix: string,
    private readonly platform: PlatformName,
    private readonly now: () => number = Date.now,
    private readonly slotMs = POST_SLOT_MS,
  ) {
    if (!(GATE_COMMAND in redis)) redis.defineCommand(GATE_COMMAND, { numberOfKeys: 2, lua: GATE_SCRIPT });
  }

  /**
   * How long the message `key` must still wait for its turn in `channel` (0: post now), and whether
   * a turn is held for it (to be given back with `posted`).
   */
  async waitFor(channel: string, key: string): Promise<{ wait: number; turn: boolean }> {
    const answer = await this.run('wait', channel, key, 0);
    if (answer === undefined) return { wait: 0, turn: false };
    return answer < 0 ? { wait: 0, turn: true } : { wait: answer, turn: answer > 0 };
  }

  /** How long the message `key` waits for its turn where it goes (a thread: its channel's turns). */
  async waitAt(to: PostTarget, key: string): Promise<number> {
    return (await this.waitFor('channel' in to ? to.channel : to.thread.channel, key)).wait;
  }

  /** The message `key` was posted in `channel`: its turn is used. */
  async posted(channel: string, key: string): Promise<void> {
    await this.run('posted', channel, key, 0);
  }

  /**
   * The platform refused the message `key` in `channel` with Retry-After `retryAfterMs`: it gets the next
   * turn there, and later turns start no earlier. Answers how long it waits for its turn.
   */
  async limited(channel: string, key: string, retryAfterMs: number): Promise<number> {
    return (await this.run('limited', channel, key, retryAfterMs)) ?? retryAfterMs;
  }

  private async run(op: 'wait' | 'posted' | 'limited', channel: string, key: string, retryAfterMs: number): Promise<number | undefined> {
    const base = `${this.prefix}:${this.platform}-pace:${channel}`;
    try {
      const commands = this.redis as unknown as Record<string, GateCommand>;
      return Number(await commands[GATE_COMMAND]!(`${base}:turns`, `${base}:next`, op, key, this.now(), this.slotMs, retryAfterMs, KEEP_MS));
    } catch {
      return undefined;
    }
  }
}

type GateCommand = (...args: (string | number)[]) => Promise<unknown>;
const GATE_COMMAND = 'armaloPostGate';

/**
 * One atomic step on a channel's turns. KEYS: the turns hash (message key -> its turn, ms) and the
 * time the next turn starts. ARGV: op, message key, now, slot, Retry-After, keep. Answers the wait
 * in ms; for `wait`, -1 when the message holds a turn that has come.
 */
const GATE_SCRIPT = `
local turns, nextKey = KEYS[1], KEYS[2]
local op, key = ARGV[1], ARGV[2]
local now, slot, retryAfter, keep = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local function give(notBefore)
  local at = math.max(tonumber(redis.call('GET', nextKey) or '0'), notBefore)
  redis.call('SET', nextKey, at + slot, 'PX', at + slot - now + keep)
  redis.call('HSET', turns, key, at)
  redis.call('PEXPIRE', turns, at - now + keep)
  return at - now
end
if op == 'posted' then
  redis.call('HDEL', turns, key)
  return 0
end
if op == 'limited' then return give(now + retryAfter) end
local turn = redis.call('HGET', turns, key)
if turn then
  turn = tonumber(turn)
  if turn > now then return turn - now end
  return -1
end
local nextAt = tonumber(redis.call('GET', nextKey) or '0')
if nextAt - slot > now then return give(now) end
return 0
`;

/**
 * A post of the message `key` into `channel`, in turn: one waiting for its turn fails with
 * RetryLater (nothing sent) before `send` is called; one the platform refused before acting (a
 * 429, RetryLater.notDone) gets a turn; a turn is given back once the post succeeded. Without a
 * gate or a key, `send` runs as it is.
 */
export async function pacedPost<T>(gate: PostGate | undefined, platform: string, channel: string, key: string | undefined, send: () => Promise<T>): Promise<T> {
  if (!gate || !key) return send();
  const turn = await gate.waitFor(channel, key);
  if (turn.wait > 0) throw new RetryLater(turn.wait, `${platform} is pacing posts to ${channel}: this message's turn is in ${Math.ceil(turn.wait / 1000)} s`, true);
  try {
    const sent = await send();
    if (turn.turn) await gate.posted(channel, key);
    return sent;
  } catch (err) {
    if (err instanceof RetryLater && err.notDone) {
      const wait = await gate.limited(channel, key, err.delayMs);
      throw new RetryLater(wait, `${err.message}; this message's turn in ${channel} is in ${Math.ceil(wait / 1000)} s`, true);
    }
    throw err;
  }
}
