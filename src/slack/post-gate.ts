/**
 * Slack's pace for chat.postMessage once it has said "slow down" in a channel: about one message a
 * second per channel (short bursts allowed), which is what its 429s enforce.
 */
export const POST_SLOT_MS = 1000;
/** A turn nobody came back for (its job failed or was removed) is forgotten this long after it. */
const UNCLAIMED_MS = 60_000;

interface ChannelPace {
  /** When the next turn not yet given out starts (ms since the epoch). */
  next: number;
  /** Turns given out, by message key: when that message may go. */
  turns: Map<string, number>;
}

/**
 * Turns for posting into channels Slack has rate limited, in this process. Without it, every card
 * job of a burst retried after the same Retry-After, posted into the same channels, and was refused
 * again: 500 requests under a limit of one post a second made 13,000 chat.postMessage calls in
 * 40 s, and each refused retry re-ran its job. Now a message Slack refuses gets a turn in that
 * channel, one POST_SLOT_MS after the previous turn and never before the Retry-After, and waits
 * for it without calling Slack; when its turn comes it posts. A new message for a channel where
 * refused messages still wait their turns joins the end of that queue at once: posted now, it
 * would be refused (the turns ahead of it use the channel's allowance) or would go out ahead of
 * messages older than it. Where nothing waits, a message posts at once (never held back on a
 * guess; if Slack refuses it, it takes a turn too). Another replica keeps its own turns.
 */
export class PostGate {
  private readonly channels = new Map<string, ChannelPace>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly slotMs = POST_SLOT_MS,
  ) {}

  /**
   * How long the message `key` must still wait for its turn in `channel` (0: post now). Asking
   * again before the post (the ledger asks, then the post itself) answers the same.
   */
  waitFor(channel: string, key: string): number {
    const pace = this.channels.get(channel);
    if (!pace) return 0;
    const now = this.now();
    const turn = pace.turns.get(key);
    if (turn !== undefined) return turn > now ? turn - now : 0;
    // Refused messages still waiting here: this one takes the next turn after them.
    if (pace.next - this.slotMs > now) return this.giveTurn(pace, key, now, now);
    if (pace.turns.size === 0) this.channels.delete(channel);
    return 0;
  }

  /** The message `key` was posted in `channel`: its turn is used. */
  posted(channel: string, key: string): void {
    const pace = this.channels.get(channel);
    if (!pace || !pace.turns.delete(key)) return;
    if (pace.turns.size === 0 && pace.next <= this.now()) this.channels.delete(channel);
  }

  /**
   * Slack refused the message `key` in `channel` with Retry-After `retryAfterMs`: it gets the next
   * turn there, and later turns start no earlier. Answers how long it waits for its turn.
   */
  limited(channel: string, key: string, retryAfterMs: number): number {
    const now = this.now();
    let pace = this.channels.get(channel);
    if (!pace) this.channels.set(channel, (pace = { next: 0, turns: new Map() }));
    return this.giveTurn(pace, key, now, now + retryAfterMs);
  }

  private giveTurn(pace: ChannelPace, key: string, now: number, notBefore: number): number {
    for (const [k, at] of pace.turns) if (at < now - UNCLAIMED_MS) pace.turns.delete(k);
    const at = Math.max(pace.next, notBefore);
    pace.next = at + this.slotMs;
    pace.turns.set(key, at);
    return at - now;
  }
}
