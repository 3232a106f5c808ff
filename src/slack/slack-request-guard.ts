import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Db } from '../db/database.js';
import type { Logger } from '../observability/logger.js';

/** Slack's replay window, applied both ways: a timestamp too far ahead is refused like a stale one. */
export const SLACK_MAX_SKEW_SECONDS = 5 * 60;
/** Seen-request keys are kept well past the window, so no replay inside it can be mistaken for new. */
const SEEN_KEEP_MS = 60 * 60_000;
const MAX_BODY_BYTES = 1024 * 1024;

export type SlackSignatureCheck = { ok: true } | { ok: false; reason: string };

/**
 * Verifies Slack's v0 request signature: `v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<raw body>` with
 * the signing secret. Bolt only refuses timestamps in the past; a signed request dated in the
 * future would stay replayable for as long as its date lies ahead, so skew is checked both ways.
 */
export function verifySlackSignature(
  signingSecret: string,
  rawBody: string,
  timestampHeader: string | undefined,
  signatureHeader: string | undefined,
  nowSeconds: number,
): SlackSignatureCheck {
  if (!timestampHeader || !/^\d{1,12}$/.test(timestampHeader)) return { ok: false, reason: 'missing or malformed x-slack-request-timestamp' };
  if (!signatureHeader) return { ok: false, reason: 'missing x-slack-signature' };
  const ts = Number(timestampHeader);
  if (Math.abs(nowSeconds - ts) > SLACK_MAX_SKEW_SECONDS) return { ok: false, reason: 'x-slack-request-timestamp is more than 5 minutes away from our clock' };
  const expected = Buffer.from(slackSignature(signingSecret, ts, rawBody), 'utf8');
  const got = Buffer.from(signatureHeader, 'utf8');
  return got.length === expected.length && timingSafeEqual(got, expected) ? { ok: true } : { ok: false, reason: 'signature mismatch' };
}

export function slackSignature(signingSecret: string, timestamp: number, rawBody: string): string {
  return `v0=${createHmac('sha256', signingSecret).update(`v0:${timestamp}:${rawBody}`).digest('hex')}`;
}

/**
 * What makes a Slack request the same request: the trigger id of a command or interaction (unique
 * per invocation), the event id of an Events API delivery (the same on Slack's retries), else the
 * signature itself (an exact replay of the signed bytes).
 */
export function slackRequestKey(rawBody: string, contentType: string | undefined, signature: string): string {
  try {
    if (contentType?.startsWith('application/json')) {
      const key = slackBodyKey(JSON.parse(rawBody));
      if (key) return key;
    } else {
      const form = new URLSearchParams(rawBody);
      const payload = form.get('payload');
      const key = payload !== null ? slackBodyKey(JSON.parse(payload)) : slackBodyKey({ trigger_id: form.get('trigger_id'), team_id: form.get('team_id') });
      if (key) return key;
    }
  } catch {
    // Not parseable: Bolt will refuse it; the signature still identifies the bytes.
  }
  return `signature:${signature}`;
}

/**
 * The same key from a request's parsed body (HTTP mode parses it from the raw bytes; Socket Mode
 * gets the envelope's payload already parsed): `event:<team>:<event_id>` for an Events API delivery,
 * `trigger:<team>:<trigger_id>` for a command or an interaction; undefined when it has neither.
 */
export function slackBodyKey(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const b = body as { event_id?: unknown; trigger_id?: unknown; team_id?: unknown; team?: { id?: unknown } | null };
  const team = typeof b.team_id === 'string' ? b.team_id : typeof b.team?.id === 'string' ? b.team.id : '';
  if (typeof b.event_id === 'string' && b.event_id) return `event:${team}:${b.event_id}`;
  if (typeof b.trigger_id === 'string' && b.trigger_id) return `trigger:${team}:${b.trigger_id}`;
  return undefined;
}

/**
 * Records a Slack request key (table `slack_requests`); true when it is new, false for a replay.
 * Keys older than an hour are pruned now and then by the caller's `pruneState`.
 */
export async function claimSlackRequest(db: Db, key: string, atMs: number, pruneState: { lastPrune: number }): Promise<boolean> {
  const at = new Date(atMs);
  const row = await db.insertInto('slack_requests').values({ key, received_at: at }).onConflict((oc) => oc.column('key').doNothing()).executeTakeFirst();
  if (atMs - pruneState.lastPrune > 60_000) {
    pruneState.lastPrune = atMs;
    void db.deleteFrom('slack_requests').where('received_at', '<', new Date(atMs - SEEN_KEEP_MS)).execute().catch(() => undefined);
  }
  return Number(row.numInsertedOrUpdatedRows ?? 0) > 0;
}

/** What a slash command's sender sees when Slack delivers the same command again. */
export const REPLAYED_COMMAND_TEXT = 'This request was already applied; Slack delivered it again and nothing changed.';

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        resolve(undefined);
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

const header = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * Wraps Bolt's HTTP listener. Before Bolt sees a request: its signature and timestamp are checked
 * (401 when either is wrong, whichever way the clock is off), and a request already seen (Slack's
 * retry, or a captured request sent again) is acknowledged and goes no further, so every command
 * and interaction changes state at most once. Bolt then reads the buffered body (`rawBody`).
 */
export function guardSlackRequests(
  listener: (req: IncomingMessage, res: ServerResponse) => void,
  deps: { signingSecret: string; db: Db; logger: Logger; nowMs?: () => number },
): (req: IncomingMessage, res: ServerResponse) => void {
  const now = deps.nowMs ?? Date.now;
  let claimFailureLogged = 0;
  const refuse = (res: ServerResponse, status: number, message: string) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(message);
  };

  const pruneState = { lastPrune: 0 };
  /** True when this request is new; false for a replay. Old keys are pruned now and then. */
  const claim = (key: string) => claimSlackRequest(deps.db, key, now(), pruneState);

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readBody(req);
    if (!body) return refuse(res, 413, 'request body too large');
    const raw = body.toString('utf8');
    const contentType = header(req, 'content-type');
    // Slack's unsigned SSL check: Bolt answers it (and strips anything else it carries).
    const sslCheck = contentType?.startsWith('application/x-www-form-urlencoded') && new URLSearchParams(raw).get('ssl_check') === '1';
    if (!sslCheck) {
      const signature = header(req, 'x-slack-signature');
      const check = verifySlackSignature(deps.signingSecret, raw, header(req, 'x-slack-request-timestamp'), signature, Math.floor(now() / 1000));
      if (!check.ok) return refuse(res, 401, `request refused: ${check.reason}`);
      let fresh = true;
      try {
        fresh = await claim(slackRequestKey(raw, contentType, signature!));
      } catch (err) {
        // Postgres is away: the handlers behind cannot change anything either, so let them answer.
        if (now() - claimFailureLogged > 60_000) {
          claimFailureLogged = now();
          deps.logger.warn({ err: (err as Error).message }, 'cannot record a Slack request id; replays are not detected until Postgres is back');
        }
      }
      if (!fresh) {
        // A replay: acknowledged (Slack stops retrying), nothing runs again. A slash command's
        // acknowledgement is shown to its sender, so it says so; anything else gets an empty 200.
        const isCommand = !contentType?.startsWith('application/json') && new URLSearchParams(raw).has('command');
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(isCommand ? JSON.stringify({ response_type: 'ephemeral', text: REPLAYED_COMMAND_TEXT }) : '');
        return;
      }
    }
    (req as IncomingMessage & { rawBody?: Buffer }).rawBody = body;
    listener(req, res);
  };

  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      deps.logger.error({ err }, 'Slack request guard failed');
      if (!res.headersSent) refuse(res, 500, 'internal error');
    });
  };
}
