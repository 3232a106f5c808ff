import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The bench reads the fake's call counts here (a GET; Slack Web API calls are POSTs to /api/<method>). */
export const FAKE_SLACK_COUNTS_PATH = '/__bench/counts';

/**
 * The least of the Slack Web API the app needs while the benchmark runs (it posts incident
 * notices through the worker): `{ok: true, ...}` answers to POST /api/<method>, 200 "ok" to
 * response_url posts under /respond/. It only counts calls; it keeps no bodies.
 */
export function createFakeSlack(): { server: Server; counts: Map<string, number> } {
  const counts = new Map<string, number>();
  let ts = 0;
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (req.method === 'GET' && path === FAKE_SLACK_COUNTS_PATH) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(Object.fromEntries(counts)));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      if (path.startsWith('/respond/')) {
        counts.set('response_url', (counts.get('response_url') ?? 0) + 1);
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        return;
      }
      const method = path.replace(/^\/api\//, '').split('?')[0]!;
      counts.set(method, (counts.get(method) ?? 0) + 1);
      const args = parseArgs(String(req.headers['content-type'] ?? ''), raw);
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
