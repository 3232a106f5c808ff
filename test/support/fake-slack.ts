import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlackCall {
  method: string;
  args: Record<string, any>;
  at: number;
  /** What the fake answered (an `ok` call), and when: the `ts` of a posted message is in it. */
  answer?: Record<string, unknown>;
  answeredAt?: number;
}

export type Failure = { status: 429; retryAfter: number } | { status: 500 | 502 | 503 } | { error: string };

/**
 * Slack's posting limit as the fake can enforce it: a token bucket per `channel` value of
 * chat.postMessage, `perSecond` tokens a second, holding at most `burst`.
 */
export interface PostLimit {
  perSecond: number;
  burst: number;
}

export interface FakeSlackOptions {
  /**
   * Keep every call, answer and upload (`calls`, `responses`, `uploads`): what tests assert on. A long
   * benchmark turns it off and watches the calls through `observe` and `counts` instead.
   */
  keepCalls?: boolean;
  /** Rate limit chat.postMessage per channel the way Slack does (HTTP 429 with Retry-After). */
  postLimit?: PostLimit;
  /**
   * Who users.lookupByEmail finds: only the people in `users` (tests), or anyone, with a user id
   * derived from the email (a benchmark with many approvers).
   */
  directory?: 'listed' | 'anyone';
  /** The workspace auth.test answers with (the team id of the requests the tests send). */
  teamId?: string;
}

/**
 * A local stand-in for the Slack Web API (pointed at with SLACK_API_URL) that speaks its wire
 * format: form-encoded or JSON requests to /api/<method>, `{ok: ...}` answers, 429 with
 * Retry-After. It records every call, can be told to fail the next calls of a method (or rate limit
 * chat.postMessage per channel), and also receives `response_url` posts (/respond/<id>) and the
 * external file upload flow (files.getUploadURLExternal → POST /upload/<file id> →
 * files.completeUploadExternal). The tests and the benchmarks (bench/lib/fake-slack.ts) share it.
 */
export class FakeSlack {
  readonly calls: SlackCall[] = [];
  readonly responses: { id: string; body: Record<string, any>; at: number }[] = [];
  readonly users = new Map<string, string>();
  /** Files uploaded through the external upload flow, by file id. */
  readonly uploads = new Map<string, Buffer>();
  /** Requests by Web API method (failed and rate-limited ones included), plus `upload` and `response_url`. */
  readonly counts = new Map<string, number>();
  /** chat.postMessage calls answered 429 by the post limit, by channel. */
  readonly limited = new Map<string, number>();
  private fileCounter = 0;
  /** Answer for apps.connections.open (Socket Mode): the WebSocket URL to connect to. */
  socketUrl = '';
  private readonly failures = new Map<string, Failure[]>();
  /** A slow Slack: every call of a method (e.g. `chat.postMessage`) is answered only after this many ms. */
  readonly delays = new Map<string, number>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly callObservers: ((call: SlackCall) => void)[] = [];
  private readonly uploadObservers: ((fileId: string, body: Buffer) => void)[] = [];
  private readonly getRoutes: { prefix: string; answer: (url: URL) => unknown }[] = [];
  private server: Server | undefined;
  private tsCounter = 0;
  /**
   * The messages posted, per channel, oldest first, with their metadata: what conversations.history
   * and conversations.replies read back. Kept only with `keepCalls` (a long benchmark keeps none and
   * its lookups find nothing).
   */
  private readonly history = new Map<string, StoredMessage[]>();
  url = '';

  constructor(private readonly options: FakeSlackOptions = {}) {}

  /**
   * A failure for any call no queued failure answers (a storm: e.g. 429 or 5xx for a while, at
   * random); undefined lets the call through.
   */
  failWith: ((method: string) => Failure | undefined) | undefined;

  failNext(method: string, ...failures: Failure[]): void {
    this.failures.set(method, [...(this.failures.get(method) ?? []), ...failures]);
  }

  /** Called with every call the fake answered `ok` (after failures and the post limit). */
  observe(listener: (call: SlackCall) => void): void {
    this.callObservers.push(listener);
  }

  /** Called with every file uploaded to /upload/<file id>. */
  observeUploads(listener: (fileId: string, body: Buffer) => void): void {
    this.uploadObservers.push(listener);
  }

  /** Answers GET requests under `prefix` (not part of Slack's API: how a benchmark reads the fake). */
  serveGet(prefix: string, answer: (url: URL) => unknown): void {
    this.getRoutes.push({ prefix, answer });
  }

  async start(host = '127.0.0.1'): Promise<string> {
    this.server = createServer(async (req, res) => {
      const path = req.url ?? '/';
      const route = req.method === 'GET' ? this.getRoutes.find((r) => path.startsWith(r.prefix)) : undefined;
      if (route) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(route.answer(new URL(path, 'http://fake'))));
        return;
      }
      if (path.startsWith('/upload/')) {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        const body = Buffer.concat(chunks);
        const fileId = path.slice('/upload/'.length);
        this.count('upload');
        if (this.keep) this.uploads.set(fileId, body);
        for (const o of this.uploadObservers) o(fileId, body);
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`OK - ${body.length}`);
        return;
      }
      const raw = await readBody(req);
      if (path.startsWith('/respond/')) {
        this.count('response_url');
        if (this.keep) this.responses.push({ id: path.slice('/respond/'.length), body: parseJson(raw), at: Date.now() });
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        return;
      }
      const method = path.replace(/^\/api\//, '').split('?')[0]!;
      this.count(method);
      const args = parseArgs(req, raw);
      const wait = method === 'chat.postMessage' ? this.take(String(args.channel ?? '')) : 0;
      const failure: Failure | undefined = wait > 0 ? { status: 429, retryAfter: Math.max(1, Math.ceil(wait)) } : (this.failures.get(method)?.shift() ?? this.failWith?.(method));
      if (failure) {
        if (wait > 0) this.limited.set(String(args.channel ?? ''), (this.limited.get(String(args.channel ?? '')) ?? 0) + 1);
        if (this.keep) this.calls.push({ method: `${method}!failed`, args, at: Date.now() });
        if ('status' in failure) {
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (failure.status === 429) headers['retry-after'] = String(failure.retryAfter);
          res.writeHead(failure.status, headers).end(JSON.stringify({ ok: false, error: failure.status === 429 ? 'ratelimited' : 'internal_error' }));
        } else {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: false, error: failure.error }));
        }
        return;
      }
      const call: SlackCall = { method, args, at: Date.now() };
      if (this.keep) this.calls.push(call);
      for (const o of this.callObservers) o(call);
      const delay = this.delays.get(method);
      if (delay) await new Promise((r) => setTimeout(r, delay));
      const answer = this.answer(method, args, req.headers.host);
      Object.assign(call, { answer, answeredAt: Date.now() });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, host, resolve));
    this.url = `http://${host}:${(this.server.address() as AddressInfo).port}`;
    return `${this.url}/api/`;
  }

  /** The port it listens on (after start). */
  port(): number {
    return (this.server!.address() as AddressInfo).port;
  }

  private get keep(): boolean {
    return this.options.keepCalls !== false;
  }

  private count(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** Seconds until `channel` may post again under the post limit; 0 (and a token taken) when it may post now. */
  private take(channel: string): number {
    const limit = this.options.postLimit;
    if (!limit) return 0;
    const now = performance.now() / 1000;
    const b = this.buckets.get(channel) ?? { tokens: limit.burst, at: now };
    b.tokens = Math.min(limit.burst, b.tokens + (now - b.at) * limit.perSecond);
    b.at = now;
    this.buckets.set(channel, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return (1 - b.tokens) / limit.perSecond;
  }

  private answer(method: string, args: Record<string, any>, host: string | undefined): Record<string, unknown> {
    switch (method) {
      case 'chat.postMessage': {
        const ts = `1800000000.${String(++this.tsCounter).padStart(6, '0')}`;
        const channel = String(args.channel ?? '');
        const message: StoredMessage = { type: 'message', user: 'U0BOT', bot_id: 'B0BOT', text: String(args.text ?? ''), ts };
        if (args.thread_ts) message.thread_ts = String(args.thread_ts);
        if (isMetadata(args.metadata)) message.metadata = args.metadata;
        if (this.keep) this.history.set(channel, [...(this.history.get(channel) ?? []), message]);
        // Slack answers the message without its metadata (it is read back with include_all_metadata).
        return { ok: true, channel, ts, message: { text: args.text, ...(message.thread_ts ? { thread_ts: message.thread_ts } : {}) } };
      }
      // A post to a user id lands in the app's DM with them; the fake answers that DM's id as the user
      // id (as its chat.postMessage does), so conversations.open agrees with it.
      case 'conversations.open':
        return args.users ? { ok: true, channel: { id: String(args.users).split(',')[0] } } : { ok: false, error: 'users_list_not_supplied' };
      case 'conversations.history': {
        if (!args.channel) return { ok: false, error: 'channel_not_found' };
        // Top-level messages (and thread starters), newest first, between oldest and latest.
        const all = (this.history.get(String(args.channel)) ?? []).filter((m) => !m.thread_ts || m.thread_ts === m.ts);
        return this.page(all.filter((m) => inRange(m.ts, args)).reverse(), args);
      }
      case 'conversations.replies': {
        const all = this.history.get(String(args.channel ?? '')) ?? [];
        const root = all.find((m) => m.ts === String(args.ts));
        if (!root) return { ok: false, error: 'thread_not_found' };
        // The thread's root first, then its replies, oldest first.
        const thread = [root, ...all.filter((m) => m.thread_ts === root.ts && m.ts !== root.ts && inRange(m.ts, args))];
        return this.page(thread, args);
      }
      case 'chat.update':
        return { ok: true, channel: args.channel, ts: args.ts };
      case 'users.lookupByEmail': {
        const email = String(args.email ?? '').toLowerCase();
        const id = this.users.get(email) ?? (this.options.directory === 'anyone' ? `U0${createHash('sha256').update(email).digest('hex').slice(0, 8).toUpperCase()}` : undefined);
        return id ? { ok: true, user: { id, profile: { email: args.email } } } : { ok: false, error: 'users_not_found' };
      }
      case 'files.getUploadURLExternal': {
        const id = `F0FILE${++this.fileCounter}`;
        return { ok: true, upload_url: `${host ? `http://${host}` : this.url}/upload/${id}`, file_id: id };
      }
      case 'files.completeUploadExternal':
        return { ok: true, files: uploadedFiles(args).map((f) => ({ id: f.id, title: f.title })) };
      case 'apps.connections.open':
        return this.socketUrl ? { ok: true, url: this.socketUrl } : { ok: false, error: 'not_allowed_token_type' };
      case 'auth.test':
        return { ok: true, user_id: 'U0BOT', bot_id: 'B0BOT', team_id: this.options.teamId ?? 'T0TEAM' };
      default:
        return { ok: true };
    }
  }

  /** One page of messages in Slack's wire format: `limit` (default 100), `cursor`, metadata only with `include_all_metadata`. */
  private page(messages: StoredMessage[], args: Record<string, any>): Record<string, unknown> {
    const limit = Math.min(999, Math.max(1, Number(args.limit ?? 100) || 100));
    const start = args.cursor ? Number(Buffer.from(String(args.cursor), 'base64').toString('utf8').replace(/^next:/, '')) || 0 : 0;
    const withMetadata = args.include_all_metadata === true || args.include_all_metadata === 'true' || args.include_all_metadata === '1';
    const slice = messages.slice(start, start + limit).map((m) => (withMetadata ? { ...m } : { ...m, metadata: undefined }));
    const more = start + limit < messages.length;
    return {
      ok: true,
      messages: slice.map((m) => JSON.parse(JSON.stringify(m))),
      has_more: more,
      response_metadata: { next_cursor: more ? Buffer.from(`next:${start + limit}`).toString('base64') : '' },
    };
  }

  /** The messages posted to a channel (oldest first), as conversations.history would give them with metadata. */
  messagesIn(channel: string): StoredMessage[] {
    return [...(this.history.get(channel) ?? [])];
  }

  posts(channel?: string): SlackCall[] {
    return this.calls.filter((c) => c.method === 'chat.postMessage' && (!channel || c.args.channel === channel));
  }

  updates(): SlackCall[] {
    return this.calls.filter((c) => c.method === 'chat.update');
  }

  responseUrl(id: string): string {
    return `${this.url}/respond/${id}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** A message as Slack's history answers it. */
export interface StoredMessage {
  type: 'message';
  user: string;
  bot_id: string;
  text: string;
  ts: string;
  thread_ts?: string;
  metadata?: { event_type: string; event_payload: Record<string, unknown> };
}

function isMetadata(value: unknown): value is { event_type: string; event_payload: Record<string, unknown> } {
  const m = value as { event_type?: unknown; event_payload?: unknown } | undefined;
  return !!m && typeof m.event_type === 'string' && typeof m.event_payload === 'object' && m.event_payload !== null;
}

/** Slack's `oldest` / `latest` (exclusive unless `inclusive`). */
function inRange(ts: string, args: Record<string, any>): boolean {
  const t = Number(ts);
  const inclusive = args.inclusive === true || args.inclusive === 'true' || args.inclusive === '1';
  if (args.oldest !== undefined && (inclusive ? t < Number(args.oldest) : t <= Number(args.oldest))) return false;
  if (args.latest !== undefined && (inclusive ? t > Number(args.latest) : t >= Number(args.latest))) return false;
  return true;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** The files of a files.completeUploadExternal call (a JSON string in form-encoded calls). */
export function uploadedFiles(args: Record<string, any>): { id?: string; title?: string }[] {
  const files: unknown = typeof args.files === 'string' ? parseJson(args.files, []) : args.files;
  return Array.isArray(files) ? (files as { id?: string; title?: string }[]) : [];
}

function parseJson(raw: string, fallback: any = {}): any {
  try {
    return JSON.parse(raw || '{}');
  } catch {
    return fallback;
  }
}

function parseArgs(req: IncomingMessage, raw: string): Record<string, any> {
  const type = String(req.headers['content-type'] ?? '');
  let args: Record<string, any> = {};
  if (type.includes('application/json')) args = parseJson(raw);
  else args = Object.fromEntries(new URLSearchParams(raw));
  // Block Kit arrives as a JSON string in form-encoded calls.
  for (const key of ['blocks', 'attachments', 'view', 'metadata']) if (typeof args[key] === 'string') args[key] = parseJson(args[key], args[key]);
  return args;
}
