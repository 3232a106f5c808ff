import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlackCall {
  method: string;
  args: Record<string, any>;
  at: number;
}

type Failure = { status: 429; retryAfter: number } | { status: 500 | 502 | 503 } | { error: string };

/**
 * A local stand-in for the Slack Web API (pointed at with SLACK_API_URL) that speaks its wire
 * format: form-encoded or JSON requests to /api/<method>, `{ok: ...}` answers, 429 with
 * Retry-After. It records every call, can be told to fail the next calls of a method, and also
 * receives `response_url` posts (/respond/<id>).
 */
export class FakeSlack {
  readonly calls: SlackCall[] = [];
  readonly responses: { id: string; body: Record<string, any>; at: number }[] = [];
  readonly users = new Map<string, string>();
  /** Files uploaded through the external upload flow, by file id. */
  readonly uploads = new Map<string, Buffer>();
  private fileCounter = 0;
  /** Answer for apps.connections.open (Socket Mode): the WebSocket URL to connect to. */
  socketUrl = '';
  private readonly failures = new Map<string, Failure[]>();
  /** A slow Slack: every call of a method (e.g. `chat.postMessage`) is answered only after this many ms. */
  readonly delays = new Map<string, number>();
  private server: Server | undefined;
  private tsCounter = 0;
  url = '';

  failNext(method: string, ...failures: Failure[]): void {
    this.failures.set(method, [...(this.failures.get(method) ?? []), ...failures]);
  }

  async start(): Promise<string> {
    this.server = createServer(async (req, res) => {
      const path = req.url ?? '/';
      if (path.startsWith('/upload/')) {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        this.uploads.set(path.slice('/upload/'.length), Buffer.concat(chunks));
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`OK - ${Buffer.concat(chunks).length}`);
        return;
      }
      const raw = await readBody(req);
      if (path.startsWith('/respond/')) {
        this.responses.push({ id: path.slice('/respond/'.length), body: JSON.parse(raw || '{}'), at: Date.now() });
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        return;
      }
      const method = path.replace(/^\/api\//, '').split('?')[0]!;
      const failure = this.failures.get(method)?.shift();
      const args = parseArgs(req, raw);
      if (failure) {
        this.calls.push({ method: `${method}!failed`, args, at: Date.now() });
        if ('status' in failure) {
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (failure.status === 429) headers['retry-after'] = String(failure.retryAfter);
          res.writeHead(failure.status, headers).end(JSON.stringify({ ok: false, error: failure.status === 429 ? 'ratelimited' : 'internal_error' }));
        } else {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: false, error: failure.error }));
        }
        return;
      }
      this.calls.push({ method, args, at: Date.now() });
      const delay = this.delays.get(method);
      if (delay) await new Promise((r) => setTimeout(r, delay));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.answer(method, args)));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return `${this.url}/api/`;
  }

  private answer(method: string, args: Record<string, any>): Record<string, unknown> {
    switch (method) {
      case 'chat.postMessage':
        return { ok: true, channel: args.channel, ts: `1800000000.${String(++this.tsCounter).padStart(6, '0')}`, message: { text: args.text } };
      case 'chat.update':
        return { ok: true, channel: args.channel, ts: args.ts };
      case 'users.lookupByEmail': {
        const id = this.users.get(String(args.email).toLowerCase());
        return id ? { ok: true, user: { id, profile: { email: args.email } } } : { ok: false, error: 'users_not_found' };
      }
      case 'files.getUploadURLExternal': {
        const id = `F0FILE${++this.fileCounter}`;
        return { ok: true, upload_url: `${this.url}/upload/${id}`, file_id: id };
      }
      case 'files.completeUploadExternal': {
        const files = typeof args.files === 'string' ? JSON.parse(args.files) : args.files;
        return { ok: true, files: (files as { id: string; title?: string }[]).map((f) => ({ id: f.id, title: f.title })) };
      }
      case 'apps.connections.open':
        return this.socketUrl ? { ok: true, url: this.socketUrl } : { ok: false, error: 'not_allowed_token_type' };
      case 'auth.test':
        return { ok: true, user_id: 'U0BOT', bot_id: 'B0BOT', team_id: 'T0TEAM' };
      default:
        return { ok: true };
    }
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

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

function parseArgs(req: IncomingMessage, raw: string): Record<string, any> {
  const type = String(req.headers['content-type'] ?? '');
  let args: Record<string, any> = {};
  if (type.includes('application/json')) args = JSON.parse(raw || '{}');
  else args = Object.fromEntries(new URLSearchParams(raw));
  // Block Kit arrives as a JSON string in form-encoded calls.
  for (const key of ['blocks', 'attachments', 'view']) if (typeof args[key] === 'string') args[key] = JSON.parse(args[key]);
  return args;
}
