import type { Redis } from 'ioredis';

/**
 * Slack's pace for chat.postMessage once it has said "slow down" in a channel: about one message a
 * second per channel (short bursts allowed), which is what its 429s enforce.
 */
export const POST_SLOT_MS = 1000;
/** A channel's turns are forgotten this long after its last one (turns nobody came back for go with them). */
const KEEP_MS = 60_000;

/**
 * Turns for posting into channels Slack has rate limited, kept in Redis so that every worker of
 * every replica takes the same turns. Without them, every card job of a burst retried after the
 * same Retry-After, posted into the same channels, and was refused again: 500 requests under a
 * limit of one post a second made 13,000 chat.postMessage calls in 40 s. With turns kept per
 * process, a job retried on another worker was a stranger there and queued again at the end.
 *
 * A message Slack refuses gets a turn in that channel, POST_SLOT_MS after the previous turn and
 * never before the Retry-After, and waits for it without calling Slack. A new message for a
 * channel where turns are still to come joins the end of that queue at once: posted now, it would
 * be refused (the turns ahead of it use the channel's allowance) or would overtake older messages.
 * Where no turn is to come, a message posts at once (never held back on a guess). A turn stays
 * until its message is posted, so asking twice before the post answers the same.
 *
 * Pacing is a courtesy to Slack, never a reason to lose a notice: if Redis does not answer, the
 * message is posted (Slack's own 429 is the last word).
 */
export class PostGate {
  constructor(
    private readonly redis: Redis,
    /** The deployment's Redis key prefix (ARMALO_QUEUE_PREFIX): replicas sharing it share turns. */
    private readonly prefix: string,
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

  /** The message `key` was posted in `channel`: its turn is used. */
  async posted(channel: string, key: string): Promise<void> {
    await this.run('posted', channel, key, 0);
  }

  /**
   * Slack refused the message `key` in `channel` with Retry-After `retryAfterMs`: it gets the next
   * turn there, and later turns start no earlier. Answers how long it waits for its turn.
   */
  async limited(channel: string, key: string, retryAfterMs: number): Promise<number> {
    return (await this.run('limited', channel, key, retryAfterMs)) ?? retryAfterMs;
  }

  private async run(op: 'wait' | 'posted' | 'limited', channel: string, key: string, retryAfterMs: number): Promise<number | undefined> {
    const base = `${this.prefix}:slack-pace:${channel}`;
    try {
      const commands = this.redis as unknown as Record<string, GateCommand>;
      return Number(await commands[GATE_COMMAND]!(`${base}:turns`, `${base}:next`, op, key, this.now(), this.slotMs, retryAfterMs, KEEP_MS));
    } catch {
      return undefined;
    }
  }
}

type GateCommand = (...args: (string | number)[]) => Promise<unknown>;
const GATE_COMMAND = 'armaloSlackGate';

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
