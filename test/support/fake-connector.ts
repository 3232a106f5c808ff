import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ConnectorCall {
  method: string;
  path: string;
  conversationId: string;
  body: any;
  at: number;
}

/**
 * A local Bot Connector: the `serviceUrl` of test activities points here, so replies and proactive
 * messages arrive as POST/PUT /v3/conversations/{id}/activities[/{activityId}]. Can answer 429
 * with Retry-After or 5xx for the next calls.
 */
export class FakeConnector {
  readonly calls: ConnectorCall[] = [];
  private readonly failures: { status: number; retryAfter?: number; conversationId?: string }[] = [];
  private server: Server | undefined;
  private n = 0;
  url = '';

  /** Fails the next calls (to one conversation, when given) with these statuses. */
  failNext(...f: { status: number; retryAfter?: number; conversationId?: string }[]): void {
    this.failures.push(...f);
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const path = req.url ?? '/';
        const m = /^\/v3\/conversations\/([^/]+)\/activities/.exec(path);
        const call = { method: req.method ?? 'POST', path, conversationId: m ? decodeURIComponent(m[1]!) : '', body: raw ? JSON.parse(raw) : undefined, at: Date.now() };
        const index = this.failures.findIndex((f) => !f.conversationId || f.conversationId === call.conversationId);
        const failure = index === -1 ? undefined : this.failures.splice(index, 1)[0];
        if (failure) {
          this.calls.push({ ...call, method: `${call.method}!failed` });
          res.writeHead(failure.status, { 'content-type': 'application/json', ...(failure.retryAfter ? { 'retry-after': String(failure.retryAfter) } : {}) }).end('{"error":{"code":"Throttled"}}');
          return;
        }
        this.calls.push(call);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: `act-${++this.n}` }));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  sent(conversationId?: string): ConnectorCall[] {
    return this.calls.filter((c) => !c.method.endsWith('!failed') && (!conversationId || c.conversationId === conversationId));
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

let seq = 0;

/** A Teams message activity as the Bot Connector posts it to /api/messages. */
export function teamsMessage(serviceUrl: string, fields: { text: string; aadObjectId: string; conversationId?: string; conversationType?: 'personal' | 'channel' }) {
  return {
    type: 'message',
    id: `msg-${Date.now()}-${++seq}`,
    timestamp: new Date().toISOString(),
    serviceUrl,
    channelId: 'msteams',
    from: { id: `29:${fields.aadObjectId}`, name: 'Responder', aadObjectId: fields.aadObjectId },
    conversation: { id: fields.conversationId ?? `a:personal-${fields.aadObjectId}`, conversationType: fields.conversationType ?? 'personal', tenantId: 'tenant-1' },
    recipient: { id: '28:armalo-bot', name: 'Armalo' },
    text: fields.text,
    textFormat: 'plain',
    locale: 'en-US',
    channelData: { tenant: { id: 'tenant-1' } },
  };
}
