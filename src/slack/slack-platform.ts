import { UnrecoverableError } from 'bullmq';
import type { KnownBlock, WebClient } from '@slack/web-api';
import type { Notice } from '../notices/model.js';
import { RetryLater, type ChatPlatform, type MessageRef, type UploadFile } from '../notices/platform.js';
import { classifySlackError } from './slack-web.js';
import { renderSlack, renderSlackHome } from './render.js';

/** How long to wait after Slack answered 5xx (or one of its transient errors) before trying again. */
const UNAVAILABLE_RETRY_MS = 2_000;

/**
 * Slack as a ChatPlatform: notices rendered into Block Kit (`render.ts`) and sent through the Web
 * API client. A 429 or a 5xx becomes RetryLater (the job waits, no attempt spent); a refusal
 * (`channel_not_found`, `not_in_channel`, …) can never succeed on a retry and fails the job for good.
 */
export class SlackPlatform implements ChatPlatform {
  readonly name = 'slack' as const;

  constructor(private readonly client: WebClient) {}

  async post(channel: string, notice: Notice): Promise<MessageRef> {
    const message = renderSlack(notice);
    const res = await call(() => this.client.chat.postMessage({ channel, text: message.text, blocks: message.blocks as unknown as KnownBlock[], unfurl_links: false, unfurl_media: false }));
    // A post to a user id lands in the app's DM with them: Slack answers the DM's channel id.
    return { channel: typeof res.channel === 'string' && res.channel ? res.channel : channel, id: String(res.ts) };
  }

  async update(ref: MessageRef, notice: Notice): Promise<void> {
    const message = renderSlack(notice);
    await call(() => this.client.chat.update({ channel: ref.channel, ts: ref.id, text: message.text, blocks: message.blocks as unknown as KnownBlock[] }));
  }

  async replyInThread(root: MessageRef, notice: Notice): Promise<MessageRef> {
    const message = renderSlack(notice);
    const res = await call(() => this.client.chat.postMessage({ channel: root.channel, thread_ts: root.id, text: message.text, blocks: message.blocks as unknown as KnownBlock[], unfurl_links: false, unfurl_media: false }));
    return { channel: root.channel, id: String(res.ts) };
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
    if (failure.kind === 'rate_limited') throw new RetryLater(failure.retryAfterSeconds * 1000, `Slack rate limit: retry after ${failure.retryAfterSeconds} s`);
    if (failure.kind === 'unavailable') throw new RetryLater(UNAVAILABLE_RETRY_MS + Math.floor(Math.random() * 1000), `Slack unavailable: ${failure.message}`);
    if (failure.kind === 'permanent') throw new UnrecoverableError(failure.message);
    throw new Error(`Slack call failed: ${failure.message}`);
  }
}
