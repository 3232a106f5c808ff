import type { Notice } from './model.js';

/**
 * The port every chat platform implements (issue 13). The notice service speaks only this: it
 * never sees Block Kit, Adaptive Cards, the Slack Web API or the Bot Connector. A third platform is
 * one folder with a renderer and a `ChatPlatform`, and touches nothing else.
 */
export type PlatformName = 'slack' | 'teams';

/** Where a message we posted lives. Slack: channel + ts; Teams: conversation id + activity id. */
export interface MessageRef {
  channel: string;
  id: string;
}

/** A file to upload with a notice (a trust packet's PDF, its score chart). */
export interface UploadFile {
  data: Buffer;
  filename: string;
  title: string;
}

/** Where a notice goes: a channel or DM (as given to `post`), or a thread (as given to `replyInThread`). */
export type PostTarget = { channel: string } | { thread: MessageRef };

/** What a post carries beside the notice: the ledger key it is recorded under (for `findPosted`). */
export interface PostOptions {
  key?: string;
}

export interface ChatPlatform {
  readonly name: PlatformName;
  /** Posts into a channel id or a person's DM conversation (from `openDm`). */
  post(channel: string, notice: Notice, options?: PostOptions): Promise<MessageRef>;
  /** Replaces a message we posted with the notice's current state. */
  update(ref: MessageRef, notice: Notice): Promise<void>;
  /** A reply in the message's thread (where the platform has no threads there: in the same conversation). */
  replyInThread(root: MessageRef, notice: Notice, options?: PostOptions): Promise<MessageRef>;
  /**
   * The message posted to `to` with `options.key` since about `since`, if the platform has it (Slack:
   * message metadata, read back through the conversation's history or the thread's replies).
   * Platforms that cannot look their messages up (Teams' Bot Connector) leave it out. Throws
   * RetryLater when the platform answered 429 or 5xx.
   */
  findPosted?(to: PostTarget, key: string, since: Date): Promise<MessageRef | undefined>;
  /**
   * How long the message `key` must wait for its turn at `to` before it may be posted (0: now), on a
   * platform that paces posts into a channel it was told to slow down in (Slack, Teams). Asked before any
   * other work for the post, so a message waiting its turn costs nothing until then.
   */
  turnWait?(to: PostTarget, key: string): Promise<number>;
  /** The conversation to post to for a person; undefined when they cannot be reached yet. */
  openDm(userId: string): Promise<string | undefined>;
  /** Uploads files into a channel with the notice as their message (platforms that take files). */
  upload?(channel: string, files: UploadFile[], notice: Notice): Promise<MessageRef>;
  /** A person's home view (Slack's App Home). */
  publishHome?(userId: string, notice: Notice): Promise<void>;
}

/**
 * The platform said "not now": a rate limit (429 with Retry-After), a 5xx, Teams' 412/502/504, or
 * another worker holding the key. The job goes back to the delayed set for `delayMs` without
 * spending an attempt.
 */
export class RetryLater extends Error {
  constructor(
    readonly delayMs: number,
    message: string,
    /**
     * The platform refused the call before acting on it (a rate limit's 429): nothing was posted,
     * so a retry need not look for the message first. A 5xx or no answer leaves that unknown.
     */
    readonly notDone = false,
  ) {
    super(message);
    this.name = 'RetryLater';
  }

  /** The longer of two waits (a job retries once, after the longest Retry-After it was given). */
  static longest(a: RetryLater | undefined, b: RetryLater): RetryLater {
    return !a || b.delayMs > a.delayMs ? b : a;
  }
}

/** Teams: no conversation reference for that channel or person yet (the bot was never added or spoken to). */
export class NotReachable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotReachable';
  }
}
