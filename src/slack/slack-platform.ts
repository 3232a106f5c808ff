import { UnrecoverableError } from 'bullmq';
import type { KnownBlock, WebClient } from '@slack/web-api';
import type { Notice } from '../notices/model.js';
import { RetryLater, type ChatPlatform, type MessageRef, type PostOptions, type PostTarget, type UploadFile } from '../notices/platform.js';
import { pacedPost, type PostGate } from '../notices/post-gate.js';
import { classifySlackError } from './slack-web.js';
import { renderSlack, renderSlackHome } from './render.js';

/** How long to wait after Slack answered 5xx (or one of its transient errors) before trying again. */
const UNAVAILABLE_RETRY_MS = 2_000;
/** The message metadata event type our notices carry: `{event_type, event_payload: {ledger_key}}`. */
export const NOTICE_METADATA_EVENT = 'armalo_notice';
/** A lookup reads messages from this long before the marker (clock skew), at most this many pages. */
const LOOKUP_MARGIN_MS = 5 * 60_000;
const LOOKUP_MAX_PAGES = 10;

interface HistoryMessage {
  ts?: string;
  metadata?: { event_type?: string; event_payload?: Record<string, unknown> };
}

const metadata = (options?: PostOptions) => (options?.key ? { metadata: { event_type: NOTICE_METADATA_EVENT, event_payload: { ledger_key: options.key } } } : {});

/**
 * Slack as a ChatPlatform: notices rendered into Block Kit (`render.ts`) and sent through the Web
 * API client. A 429 or a 5xx becomes RetryLater (the job waits, no attempt spent); a refusal
 * (`channel_not_found`, `not_in_channel`, …) can never succeed on a retry and fails the job for good.
 */
export class SlackPlatform implements ChatPlatform {
  readonly name = 'slack' as const;

  constructor(
    private readonly client: WebClient,
    /** Turns for posting into channels Slack has rate limited, shared by the replicas (without one: no pacing). */
    private readonly gate?: PostGate,
  ) {}

  async post(channel: string, notice: Notice, options?: PostOptions): Promise<MessageRef> {
    const message = renderSlack(notice);
    const res = await this.paced(channel, options, () =>
      this.client.chat.postMessage({ channel, text: message.text, blocks: message.blocks as unknown as KnownBlock[], unfurl_links: false, unfurl_media: false, ...metadata(options) }),
    );
    // A post to a user id lands in the app's DM with them: Slack answers the DM's channel id.
    return { channel: typeof res.channel === 'string' && res.channel ? res.channel : channel, id: String(res.ts) };
  }

  async update(ref: MessageRef, notice: Notice): Promise<void> {
    const message = renderSlack(notice);
    await call(() => this.client.chat.update({ channel: ref.channel, ts: ref.id, text: message.text, blocks: message.blocks as unknown as KnownBlock[] }));
  }

  async replyInThread(root: MessageRef, notice: Notice, options?: PostOptions): Promise<MessageRef> {
    const message = renderSlack(notice);
    const res = await this.paced(root.channel, options, () =>
      this.client.chat.postMessage({
        channel: root.channel,
        thread_ts: root.id,
        text: message.text,
        blocks: message.blocks as unknown as KnownBlock[],
        unfurl_links: false,
        unfurl_media: false,
        ...metadata(options),
      }),
    );
    return { channel: root.channel, id: String(res.ts) };
  }

  /**
   * Finds a message we posted under a ledger key by its metadata: a thread's replies
   * (conversations.replies), or a channel's or DM's history since about `since`
   * (conversations.history; a user id is first opened to its DM with conversations.open), both with
   * `include_all_metadata`. Reads at most LOOKUP_MAX_PAGES pages of 200: a message further back is
   * not found (and would be posted again).
   */
  async findPosted(to: PostTarget, key: string, since: Date): Promise<MessageRef | undefined> {
    const oldest = ((since.getTime() - LOOKUP_MARGIN_MS) / 1000).toFixed(6);
    const matches = (m: HistoryMessage) => m.metadata?.event_type === NOTICE_METADATA_EVENT && m.metadata.event_payload?.ledger_key === key;
    let channel: string;
    let page: (cursor: string | undefined) => Promise<{ messages?: HistoryMessage[]; response_metadata?: { next_cursor?: string } }>;
    if ('thread' in to) {
      channel = to.thread.channel;
      page = (cursor) => call(() => this.client.conversations.replies({ channel, ts: to.thread.id, oldest, include_all_metadata: true, limit: 200, ...(cursor ? { cursor } : {}) }));
    } else {
      channel = to.channel;
      // A post to a user id lands in the app's DM with them; its history is under the DM's id.
      if (/^[UW][A-Z0-9]+$/.test(channel)) {
        const opened = await call(() => this.client.conversations.open({ users: to.channel }));
        channel = opened.channel?.id ?? channel;
      }
      page = (cursor) => call(() => this.client.conversations.history({ channel, oldest, include_all_metadata: true, limit: 200, ...(cursor ? { cursor } : {}) }));
    }
    let cursor: string | undefined;
    for (let n = 0; n < LOOKUP_MAX_PAGES; n++) {
      const res = await page(cursor);
      const found = (res.messages ?? []).find(matches);
      if (found?.ts) return { channel, id: found.ts };
      cursor = res.response_metadata?.next_cursor || undefined;
      if (!cursor) return undefined;
    }
    return undefined;
  }

  /**
   * A chat.postMessage into `channel`. A message Slack refused (429) gets a turn in that channel, and
   * a new one arriving while turns are still to come there takes the next one; each waits for its
   * turn without calling Slack (RetryLater, nothing sent), so a burst goes out at Slack's pace
   * instead of all retrying at once. A turn is given back once its post succeeded. Messages without
   * a key (none of our notices) take no turns.
   */
  private paced<T>(channel: string, options: PostOptions | undefined, send: () => Promise<T>): Promise<T> {
    return pacedPost(this.gate, 'Slack', channel, options?.key, () => call(send));
  }

  /** How long the message `key` waits for its turn in a rate-limited channel (0: it may go now). */
  async turnWait(to: PostTarget, key: string): Promise<number> {
    return this.gate ? this.gate.waitAt(to, key) : 0;
  }

  /** Posting to a user id delivers to the app's DM with that person: no lookup needed. */
  async openDm(userId: string): Promise<string | undefined> {
    return userId;
  }

  /** The files go up together through the external upload flow, with the notice as their message. */
  async upload(channel: string, files: UploadFile[], notice: Notice): Promise<MessageRef> {
    const message = renderSlack(notice);
    const res = await call(() =>
      this.client.files.uploadV2({
        channel_id: channel,
        initial_comment: message.text.slice(0, 3000),
        file_uploads: files.map((f) => ({ file: f.data, filename: f.filename, title: f.title })),
      }),
    );
    const uploaded = (res as { files?: { files?: { id?: string }[] }[] }).files ?? [];
    return { channel, id: uploaded[0]?.files?.[0]?.id ?? 'uploaded' };
  }

  async publishHome(userId: string, notice: Notice): Promise<void> {
    await call(() => this.client.views.publish({ user_id: userId, view: renderSlackHome(notice) }));
  }
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const failure = classifySlackError(err);
    // Slack refuses a rate-limited call before acting on it: the retry knows nothing was posted.
    if (failure.kind === 'rate_limited') throw new RetryLater(failure.retryAfterSeconds * 1000, `Slack rate limit: retry after ${failure.retryAfterSeconds} s`, true);
    if (failure.kind === 'unavailable') throw new RetryLater(UNAVAILABLE_RETRY_MS + Math.floor(Math.random() * 1000), `Slack unavailable: ${failure.message}`);
    if (failure.kind === 'permanent') throw new UnrecoverableError(failure.message);
    throw new Error(`Slack call failed: ${failure.message}`);
  }
}
