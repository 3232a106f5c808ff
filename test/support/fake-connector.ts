import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ConnectorCall {
  method: string;
  path: string;
  conversationId: string;
  body: any;
  at: number;
}

/** A member as the Teams roster describes them (the fields the bot reads). */
export interface RosterEntry {
  email?: string;
  userPrincipalName?: string;
  name?: string;
}

/** One roster lookup: GET /v3/conversations/{conversationId}/members/{memberId}. */
export interface RosterCall {
  conversationId: string;
  memberId: string;
  status: number;
  at: number;
}

/**
 * A local Bot Connector: the `serviceUrl` of test activities points here, so replies and proactive
 * messages arrive as POST/PUT /v3/conversations/{id}/activities[/{activityId}]. Can answer 429
 * with Retry-After or 5xx for the next calls.
 *
 * It also serves the Teams roster (`TeamsInfo.getMember`): GET /v3/conversations/{id}/members/{userId}
 * answers the member set with `setMember` (by AAD object id; `29:<aad>` ids are understood), any
 * other member with their ids and name only (no email). Roster lookups are kept in `rosterCalls`, not
 * in `calls`, and fail only through `failRoster`.
 */
export class FakeConnector {
  readonly calls: ConnectorCall[] = [];
  readonly rosterCalls: RosterCall[] = [];
  private readonly failures: { status: number; retryAfter?: number; conversationId?: string }[] = [];
  private readonly members = new Map<string, RosterEntry>();
  private rosterFailures = 0;
  private rosterFailureStatus = 503;
  private server: Server | undefined;
  private n = 0;
  url = '';

  /** Fails the next calls (to one conversation, when given) with these statuses. */
  failNext(...f: { status: number; retryAfter?: number; conversationId?: string }[]): void {
    this.failures.push(...f);
  }

  /** What the roster says about this person (by AAD object id). */
  setMember(aadObjectId: string, entry: RosterEntry): void {
    this.members.set(aadObjectId.toLowerCase(), entry);
  }

  /** The next `count` roster lookups fail with this status. */
  failRoster(count: number, status = 503): void {
    this.rosterFailures = count;
    this.rosterFailureStatus = status;
  }

  /** Roster lookups of one person (by AAD object id or `29:` id), or all of them. */
  rosterLookups(aadObjectId?: string): RosterCall[] {
    const id = aadObjectId?.toLowerCase();
    return this.rosterCalls.filter((c) => !id || c.memberId.toLowerCase().replace(/^29:/, '') === id);
  }

  private roster(path: string, res: ServerResponse): boolean {
    const m = /^\/v3\/conversations\/([^/]+)\/members\/([^/?]+)/.exec(path);
    if (!m) return false;
    const memberId = decodeURIComponent(m[2]!);
    const aad = memberId.toLowerCase().replace(/^29:/, '');
    const call = { conversationId: decodeURIComponent(m[1]!), memberId, status: 200, at: Date.now() };
    this.rosterCalls.push(call);
    if (this.rosterFailures > 0) {
      this.rosterFailures--;
      call.status = this.rosterFailureStatus;
      res.writeHead(call.status, { 'content-type': 'application/json' }).end('{"error":{"code":"ServiceError","message":"roster unavailable"}}');
      return true;
    }
    const entry = this.members.get(aad);
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({ id: `29:${aad}`, aadObjectId: aad, name: entry?.name ?? 'Member', ...(entry?.email ? { email: entry.email } : {}), ...(entry?.userPrincipalName ? { userPrincipalName: entry.userPrincipalName } : {}), tenantId: 'tenant-1' }),
    );
    return true;
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const path = req.url ?? '/';
        if (req.method === 'GET' && this.roster(path, res)) return;
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
