import { FakeSlack, uploadedFiles, type PostLimit } from '../../test/support/fake-slack.js';

export type { PostLimit };

/** The bench reads the fake's call counts here (a GET; Slack Web API calls are POSTs to /api/<method>). */
export const FAKE_SLACK_COUNTS_PATH = '/__bench/counts';
/** The bench reads the approval cards posted here: GET /__bench/cards?from=<index> (see CardLog). */
export const FAKE_SLACK_CARDS_PATH = '/__bench/cards';
/** The bench reads trust packet deliveries here: GET /__bench/packets?from=<index> (see PacketLog). */
export const FAKE_SLACK_PACKETS_PATH = '/__bench/packets';

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
 * The fake Slack Web API of the tests (test/support/fake-slack.ts: the same wire format, 429 with
 * Retry-After, the external file upload flow), set up for a benchmark: it keeps no bodies, finds anyone
 * by email (a user id derived from the address), counts calls (GET FAKE_SLACK_COUNTS_PATH), and
 * records what the benchmarks time: each approval card (a chat.postMessage whose blocks hold
 * `request <id>`) once Slack would have accepted it, and trust packet deliveries (see PacketLog).
 * Uploads are read whole; their size and whether they hold a PDF are kept, not the bytes.
 *
 * With `limit`, chat.postMessage is rate limited per channel the way Slack does it (about one
 * message a second per channel, short bursts allowed): over the limit it answers HTTP 429 with
 * `Retry-After` (whole seconds, rounded up) and `{ok: false, error: "ratelimited"}`. Other methods
 * are never limited.
 */
export function createFakeSlack(limit?: PostLimit): FakeSlack {
  const slack = new FakeSlack({ keepCalls: false, directory: 'anyone', teamId: 'T0BENCH', ...(limit ? { postLimit: limit } : {}) });
  const cards: [string, string, number][] = [];
  const packetEvents: PacketEvent[] = [];
  /** Uploads received at /upload/<file id>: bytes, and whether they hold a PDF. */
  const uploads = new Map<string, { bytes: number; pdf: boolean }>();
  const now = () => performance.timeOrigin + performance.now();
  // The web client sends the file as multipart form data: the PDF is inside, not at byte 0.
  slack.observeUploads((fileId, body) => uploads.set(fileId, { bytes: body.length, pdf: body.includes('%PDF-') && body.includes('%%EOF') }));
  slack.observe(({ method, args }) => {
    if (method === 'chat.postMessage') {
      const channel = String(args.channel ?? '');
      const blocks = JSON.stringify(args.blocks ?? '');
      const id = CARD_REQUEST_ID.exec(blocks)?.[1];
      if (id) cards.push([id, channel, now()]);
      const packetId = blocks.includes('Trust packet') ? PACKET_ID.exec(blocks)?.[1] : undefined;
      if (packetId) packetEvents.push(['summary', channel, now(), packetId, 0, false]);
    }
    if (method === 'files.completeUploadExternal') {
      const files = uploadedFiles(args);
      const got = files.map((f) => uploads.get(f.id ?? ''));
      const bytes = got.reduce((n, u) => n + (u?.bytes ?? 0), 0);
      packetEvents.push(['file', String(args.channel_id ?? ''), now(), files.map((f) => f.id ?? '?').join(','), bytes, got.some((u) => u?.pdf === true)]);
    }
  });
  const from = (url: URL) => Math.max(0, Number(url.searchParams.get('from') ?? 0) || 0);
  slack.serveGet(FAKE_SLACK_COUNTS_PATH, () => Object.fromEntries(slack.counts));
  slack.serveGet(FAKE_SLACK_CARDS_PATH, (url): CardLog => ({ cards: cards.slice(from(url)), next: cards.length, limited: Object.fromEntries(slack.limited) }));
  slack.serveGet(FAKE_SLACK_PACKETS_PATH, (url): PacketLog => ({ events: packetEvents.slice(from(url)), next: packetEvents.length }));
  return slack;
}
