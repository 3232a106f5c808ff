import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The bench reads the fake's call counts here (a GET; Slack Web API calls are POSTs to /api/<method>). */
export const FAKE_SLACK_COUNTS_PATH = '/__bench/counts';
/** The bench reads the approval cards posted here: GET /__bench/cards?from=<index> (see CardLog). */
export const FAKE_SLACK_CARDS_PATH = '/__bench/cards';
/** The bench reads trust packet deliveries here: GET /__bench/packets?from=<index> (see PacketLog). */
export const FAKE_SLACK_PACKETS_PATH = '/__bench/packets';

/**
 * Slack's posting limit as the fake enforces it: a token bucket per `channel` value of
 * chat.postMessage, `perSecond` tokens a second, holding at most `burst`.
 */
export interface PostLimit {
  perSecond: number;
  burst: number;
}

/** What GET /__bench/cards answers: approval cards posted (200s only), from index `from` on. */
export interface CardLog {
  /** [request id, channel, when Slack accepted it (epoch ms, performance.timeOrigin + performance.now())] */
  cards: [string, string, number][];
  /** Index of the next card not yet returned: pass it as `from` next time. */
  next: number;
  /** chat.postMessage calls answered 429, by channel. */
  limited: Record<string, number>;
}

/**
 * What GET /__bench/packets answers: trust packet deliveries, from index `from` on. A `summary` is a
 * chat.postMessage whose blocks hold `Packet <id>` (src/slack/slack-notifier.ts, packetDelivery);
 * a `file` is a files.completeUploadExternal, with what was uploaded for its files (the app may
 * attach more than the PDF, e.g. the score chart as a PNG).
 */
export interface PacketLog {
  /**
   * [kind, channel, when Slack accepted it (epoch ms), packet id (summary) or the file ids, comma-separated (file),
   * bytes uploaded for those files, multipart bodies included (file), whether one of them held a whole PDF (file)]
   */
  events: PacketEvent[];
  next: number;
}
export type PacketEvent = ['summary', string, number, string, 0, false] | ['file', string, number, string, number, boolean];

/** A trust packet summary's context line: `Packet <id> · sha256 ...`. */
const PACKET_ID = /Packet ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/;

/** The id in an approval card's blocks: its context line ends with `request <id>` (src/slack/approval.blocks.ts). */
const CARD_REQUEST_ID = /request ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/;

/**
 * The least of the Slack Web API the app needs while the benchmark runs: `{ok: true, ...}` answers
 * to POST /api/<method>, 200 "ok" to response_url posts under /respond/. It counts calls and keeps
 * no bodies, except for approval cards: each chat.postMessage whose blocks hold `request <id>` is
 * recorded (id, channel, time) once Slack would have accepted it; and trust packet deliveries (see
 * PacketLog). It supports the external file upload flow (files.uploadV2 in the web client):
 * files.getUploadURLExternal answers an upload URL on this server (`/upload/<file id>`), a POST
 * there is read whole (its size and whether it holds a PDF are kept, not the bytes) and answered
 * `OK - <bytes>`, and files.completeUploadExternal echoes the files.
 *
 * With `limit`, chat.postMessage is rate limited per channel the way Slack does it (about one
 * message a second per channel, short bursts allowed): over the limit it answers HTTP 429 with
 * `Retry-After` (whole seconds, rounded up) and `{ok: false, error: "ratelimited"}`. Other methods
 * are never limited.
 */
export function createFakeSlack(limit?: PostLimit): { server: Server; counts: Map<string, number> } {
  const counts = new Map<string, number>();
  const cards: [string, string, number][] = [];
  const limited = new Map<string, number>();
  const buckets = new Map<string, { tokens: number; at: number }>();
  const packetEvents: PacketEvent[] = [];
  /** Uploads received at /upload/<file id>: bytes, and whether they hold a PDF. */
  const uploads = new Map<string, { bytes: number; pdf: boolean }>();
  let fileCounter = 0;
  /** Seconds until `channel` may post again; 0 (and a token taken) when it may post now. */
  const take = (channel: string): number => {
    if (!limit) return 0;
    const now = performance.now() / 1000;
    const b = buckets.get(channel) ?? { tokens: limit.burst, at: now };
    b.tokens = Math.min(limit.burst, b.tokens + (now - b.at) * limit.perSecond);
    b.at = now;
    buckets.set(channel, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return (1 - b.tokens) / limit.perSecond;
  };
  let ts = 0;
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (req.method === 'GET' && path === FAKE_SLACK_COUNTS_PATH) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(Object.fromEntries(counts)));
      return;
    }
    if (req.method === 'GET' && path.startsWith(FAKE_SLACK_CARDS_PATH)) {
      const from = Math.max(0, Number(new URL(path, 'http://x').searchParams.get('from') ?? 0) || 0);
      const log: CardLog = { cards: cards.slice(from), next: cards.length, limited: Object.fromEntries(limited) };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(log));
      return;
    }
    if (req.method === 'GET' && path.startsWith(FAKE_SLACK_PACKETS_PATH)) {
      const from = Math.max(0, Number(new URL(path, 'http://x').searchParams.get('from') ?? 0) || 0);
      const log: PacketLog = { events: packetEvents.slice(from), next: packetEvents.length };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(log));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (path.startsWith('/upload/')) {
        const body = Buffer.concat(chunks);
        counts.set('upload', (counts.get('upload') ?? 0) + 1);
        // The web client sends the file as multipart form data: the PDF is inside, not at byte 0.
        uploads.set(path.slice('/upload/'.length), { bytes: body.length, pdf: body.includes('%PDF-') && body.includes('%%EOF') });
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`OK - ${body.length}`);
        return;
      }
      const raw = Buffer.concat(chunks).toString('utf8');
      if (path.startsWith('/respond/')) {
        counts.set('response_url', (counts.get('response_url') ?? 0) + 1);
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        return;
      }
      const method = path.replace(/^\/api\//, '').split('?')[0]!;
      counts.set(method, (counts.get(method) ?? 0) + 1);
      const args = parseArgs(String(req.headers['content-type'] ?? ''), raw);
      if (method === 'chat.postMessage') {
        const channel = String(args.channel ?? '');
        const wait = take(channel);
        if (wait > 0) {
          limited.set(channel, (limited.get(channel) ?? 0) + 1);
          res
            .writeHead(429, { 'content-type': 'application/json', 'retry-after': String(Math.max(1, Math.ceil(wait))) })
            .end(JSON.stringify({ ok: false, error: 'ratelimited' }));
          return;
        }
        // The web client sends blocks as a JSON string in a form field (or as an array in JSON).
        const blocks = typeof args.blocks === 'string' ? args.blocks : JSON.stringify(args.blocks ?? '');
        const id = CARD_REQUEST_ID.exec(blocks)?.[1];
        if (id) cards.push([id, channel, performance.timeOrigin + performance.now()]);
        const packetId = blocks.includes('Trust packet') ? PACKET_ID.exec(blocks)?.[1] : undefined;
        if (packetId) packetEvents.push(['summary', channel, performance.timeOrigin + performance.now(), packetId, 0, false]);
      }
      if (method === 'files.getUploadURLExternal') {
        const fileId = `F0BENCH${++fileCounter}`;
        const upload = `http://${req.headers.host ?? '127.0.0.1'}/upload/${fileId}`;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, upload_url: upload, file_id: fileId }));
        return;
      }
      if (method === 'files.completeUploadExternal') {
        let files: { id?: string; title?: string }[] = [];
        try {
          const parsed: unknown = typeof args.files === 'string' ? JSON.parse(args.files) : args.files;
          if (Array.isArray(parsed)) files = parsed as typeof files;
        } catch {
          files = [];
        }
        const got = files.map((f) => uploads.get(f.id ?? ''));
        const bytes = got.reduce((n, u) => n + (u?.bytes ?? 0), 0);
        const ids = files.map((f) => f.id ?? '?').join(',');
        packetEvents.push(['file', String(args.channel_id ?? ''), performance.timeOrigin + performance.now(), ids, bytes, got.some((u) => u?.pdf === true)]);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, files: files.map((f) => ({ id: f.id, title: f.title })) }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer(method, args, () => ++ts)));
    });
  });
  return { server, counts };
}

function answer(method: string, args: Record<string, unknown>, nextTs: () => number): Record<string, unknown> {
  switch (method) {
    case 'chat.postMessage':
      return { ok: true, channel: args.channel, ts: `1800000000.${String(nextTs()).padStart(6, '0')}`, message: { text: args.text } };
    case 'chat.update':
      return { ok: true, channel: args.channel, ts: args.ts };
    case 'users.lookupByEmail': {
      const email = String(args.email ?? '');
      const id = `U0${createHash('sha256').update(email.toLowerCase()).digest('hex').slice(0, 8).toUpperCase()}`;
      return { ok: true, user: { id, profile: { email } } };
    }
    case 'auth.test':
      return { ok: true, user_id: 'U0BOT', bot_id: 'B0BOT', team_id: 'T0BENCH' };
    default:
      return { ok: true };
  }
}

function parseArgs(contentType: string, raw: string): Record<string, unknown> {
  try {
    if (contentType.includes('application/json')) return JSON.parse(raw || '{}') as Record<string, unknown>;
  } catch {
    return {};
  }
  return Object.fromEntries(new URLSearchParams(raw));
}

export function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}
