import { beforeAll, describe, expect } from 'vitest';
import { TOKEN, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { APPROVALS_TEST_POLICY } from './support/approvals-policy.js';
import { encodeCursor } from '../src/core/cursor.js';

/**
 * Issue 18, listing: GET /v1/agents, /v1/incidents (+ one incident with its timeline) and
 * /v1/approval-requests through HTTP with each token scope, their filters, cursor pagination, and
 * bad query input answered 400.
 */
const TOKENS = {
  admin: TOKEN,
  platform: 'tok_listing_platform_0123456789abcdef',
  botA: 'tok_listing_agent_a_0123456789abcdef',
} as const;
type Who = keyof typeof TOKENS;

let app: TestApp;
const call = (who: Who, method: string, path: string, body?: unknown) => app.call(method, path, body, { token: TOKENS[who] });
const get = (who: Who, path: string) => call(who, 'GET', path);

const agent = (name: string, owner: string, riskTier: string, scopes: string[]) => ({ name, owner, riskTier, grants: scopes.map((scope) => ({ scope })) });
const AGENTS: Record<string, ReturnType<typeof agent>> = {
  'bot-a': agent('Alpha mailer', 'ana@example.com', 'high', ['mail:send', 'payments:transfer']),
  'bot-b': agent('Billing helper', 'Bob@Example.com', 'low', ['crm:write', 'payments:refund']),
  'bot-c': agent('Crm sync', 'ana@example.com', 'medium', ['crm:write', 'mail:send']),
  'bot-d': agent('Data loader', 'dee@example.com', 'critical', ['data_x:read']),
  'bot-e': agent('Echo', 'ana@example.com', 'low', ['dataax:read']),
  'bot-f': agent('Payments HELPER', 'fay@example.com', 'high', ['payments:transfer:partial']),
  'bot-g': agent('Ghost', 'gus@example.com', 'low', ['mail:send']),
};

/** Follows nextCursor through every page; fails on a page larger than asked or a loop. */
async function allPages(who: Who, path: string, limit: number): Promise<any[]> {
  const items: any[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 50; pages++) {
    const sep = path.includes('?') ? '&' : '?';
    const res = await get(who, `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.items.length).toBeLessThanOrEqual(limit);
    items.push(...res.body.items);
    cursor = res.body.nextCursor;
    if (cursor === null) return items;
  }
  throw new Error('pagination did not end');
}

const ids = (items: { id: string }[]) => items.map((i) => i.id);
const act = async (id: string, body: Record<string, unknown>) => {
  const res = await call('admin', 'POST', `/v1/agents/${id}/actions`, body);
  expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
  return res.body;
};

let firstIncidentOfB: string;
let ttlIncident: string;

const it = appTest({
  policy: APPROVALS_TEST_POLICY,
  env: { ARMALO_API_TOKENS: `root:${TOKENS.admin},platform-svc:${TOKENS.platform}:platform,bot-a-mcp:${TOKENS.botA}:agent=bot-a` },
  appOptions: { relayPollMs: 200 },
});
it.beforeAll(async ({ app: started }) => {
  app = started;
  for (const [id, body] of Object.entries(AGENTS)) expect((await call('admin', 'PUT', `/v1/agents/${id}`, body)).status).toBe(201);
  // bot-b: contained, restored (incident closed), contained again (a second, open incident).
  firstIncidentOfB = (await act('bot-b', { action: 'contain', reason: 'refund spike' })).incidentId;
  await act('bot-b', { action: 'narrow', scopes: ['crm:*'], reason: 'crm too' });
  await act('bot-b', { action: 'restore', reason: 'false alarm' });
  await act('bot-b', { action: 'contain', reason: 'refund spike again' });
  // bot-c: narrowed; bot-g: contained with a ttl that runs out (its incident closes by itself).
  await act('bot-c', { action: 'narrow', scopes: ['mail:*'], reason: 'odd mail' });
  ttlIncident = (await act('bot-g', { action: 'contain', reason: 'short hold', ttl: 1 })).incidentId;
  await waitFor(async () => (await get('admin', '/v1/agents/bot-g')).body.status === 'active', 15_000, 'the ttl to lift the contain of bot-g');
}, 60_000);

describe('GET /v1/agents', () => {
  it('lists every agent in id order, each as GET /v1/agents/{id} shows it, page by page', async () => {
    const items = await allPages('admin', '/v1/agents', 2);
    expect(ids(items)).toEqual(Object.keys(AGENTS).sort());
    for (const item of items) expect(item).toEqual((await get('admin', `/v1/agents/${item.id}`)).body);
    const first = await get('admin', '/v1/agents');
    expect(first.body.items).toHaveLength(7);
    expect(first.body.nextCursor).toBeNull();
  });

  it('filters by status, owner (case-insensitive), risk tier, name or id search, and combines them', async () => {
    const list = async (query: string) => ids((await get('admin', `/v1/agents?${query}`)).body.items);
    expect(await list('status=contained')).toEqual(['bot-b']);
    expect(await list('status=narrowed')).toEqual(['bot-c']);
    expect(await list('status=active')).toEqual(['bot-a', 'bot-d', 'bot-e', 'bot-f', 'bot-g']);
    expect(await list('status=revoked')).toEqual([]);
    expect(await list('owner=bob@example.com')).toEqual(['bot-b']);
    expect(await list('owner=ANA@example.com')).toEqual(['bot-a', 'bot-c', 'bot-e']);
    expect(await list('riskTier=high')).toEqual(['bot-a', 'bot-f']);
    expect(await list('q=helper')).toEqual(['bot-b', 'bot-f']);
    expect(await list('q=BOT-D')).toEqual(['bot-d']);
    // LIKE's own wildcards in a search are plain characters.
    expect(await list('q=%25')).toEqual([]);
    expect(await list('q=_')).toEqual([]);
    expect(await list('owner=ana@example.com&riskTier=high')).toEqual(['bot-a']);
    expect(await list('owner=ana@example.com&status=narrowed&q=crm')).toEqual(['bot-c']);
  });

  it('scope: agents holding a grant the glob matches, as the decision path matches globs', async () => {
    const list = async (scope: string) => ids((await get('admin', `/v1/agents?scope=${encodeURIComponent(scope)}`)).body.items);
    expect(await list('payments:*')).toEqual(['bot-a', 'bot-b', 'bot-f']);
    expect(await list('payments:transfer')).toEqual(['bot-a']);
    expect(await list('*:write')).toEqual(['bot-b', 'bot-c']);
    expect(await list('*')).toEqual(Object.keys(AGENTS).sort());
    // `_` is a literal character, not LIKE's any-one-character.
    expect(await list('data_x:*')).toEqual(['bot-d']);
    // A grant removed by an update no longer counts.
    await call('admin', 'PUT', '/v1/agents/bot-e', { ...AGENTS['bot-e'], grants: [{ scope: 'crm:read' }] });
    expect(await list('dataax:*')).toEqual([]);
    expect(await list('crm:read')).toEqual(['bot-e']);
  });

  it('a platform token lists every agent; an agent token only its own, whatever it asks', async () => {
    expect(ids((await get('platform', '/v1/agents')).body.items)).toEqual(Object.keys(AGENTS).sort());
    expect(ids((await get('botA', '/v1/agents')).body.items)).toEqual(['bot-a']);
    expect(ids((await get('botA', '/v1/agents?status=contained')).body.items)).toEqual([]);
    expect(ids((await get('botA', '/v1/agents?q=bot-b')).body.items)).toEqual([]);
    expect((await get('botA', `/v1/agents?cursor=${encodeCursor('agents', { id: 'bot-0' })}`)).body.items.map((a: any) => a.id)).toEqual(['bot-a']);
    expect((await call('botA', 'GET', '/v1/agents', undefined)).status).toBe(200);
    expect((await app.call('GET', '/v1/agents', undefined, { token: null })).status).toBe(401);
  });

  it('bad query input is a 400 that says what was wrong, never a 500', async () => {
    const cases: [string, string][] = [
      ['status=asleep', 'status'],
      ['riskTier=extreme', 'riskTier'],
      ['limit=0', 'limit must be at least 1'],
      ['limit=1000', 'limit must be at most 200'],
      ['limit=ten', 'limit'],
      ['limit=-1', 'limit'],
      ['cursor=garbage!', 'cursor'],
      ['cursor=eyJrIjoiYSJ9', 'cursor'],
      [`cursor=${encodeCursor('incidents', { id: '00000000-0000-4000-8000-000000000000', at: '2026-01-01T00:00:00.000000Z' })}`, 'cursor'],
      ['scope=Payments:%20x', 'scope'],
      ['owner=', 'owner'],
      ['q=' + 'x'.repeat(201), 'q'],
      ['colour=blue', 'unknown field'],
      ['status=active&status=contained', 'given more than once'],
    ];
    for (const [query, words] of cases) {
      const res = await get('admin', `/v1/agents?${query}`);
      expect(res.status, `${query}: ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
      expect(res.body.error.message, query).toContain(words);
    }
  });
});

describe('GET /v1/incidents and /v1/incidents/{id}', () => {
  it('lists incidents newest first, filtered by status and agent, page by page', async () => {
    const all = await allPages('admin', '/v1/incidents', 1);
    expect(all).toHaveLength(4);
    const opened = all.map((i) => i.openedAt);
    expect([...opened].sort().reverse()).toEqual(opened);
    const open = (await get('admin', '/v1/incidents?status=open')).body.items;
    expect(open.map((i: any) => [i.agentId, i.status, i.openedWith])).toEqual([
      ['bot-c', 'open', 'narrow'],
      ['bot-b', 'open', 'contain'],
    ]);
    expect(open[1]).toMatchObject({ agentName: 'Billing helper', agentStatus: 'contained', openedBy: 'api:root', openedVia: 'api', reason: 'refund spike again', closedAt: null, steps: 1 });
    const closed = (await get('admin', '/v1/incidents?status=closed')).body.items;
    expect(closed.map((i: any) => i.agentId)).toEqual(['bot-g', 'bot-b']);
    expect(closed[1]).toMatchObject({ id: firstIncidentOfB, closedBy: 'api:root', steps: 3 });
    expect((await get('admin', '/v1/incidents?agentId=bot-b')).body.items).toHaveLength(2);
    expect((await get('admin', '/v1/incidents?agentId=bot-b&status=closed')).body.items.map((i: any) => i.id)).toEqual([firstIncidentOfB]);
    expect((await get('admin', '/v1/incidents?agentId=bot-a')).body).toEqual({ items: [], nextCursor: null });
  });

  it('one incident with its timeline: who did what, when, via which platform, with the audit entries', async () => {
    const res = await get('admin', `/v1/incidents/${firstIncidentOfB}`);
    expect(res.status).toBe(200);
    const { body } = res;
    expect(body).toMatchObject({ id: firstIncidentOfB, agentId: 'bot-b', status: 'closed', agent: { id: 'bot-b', owner: 'Bob@Example.com', status: 'contained' } });
    expect(body.timeline.map((e: any) => [e.event, e.actor, e.via])).toEqual([
      ['contain', 'api:root', 'api'],
      ['narrow', 'api:root', 'api'],
      ['restore', 'api:root', 'api'],
      ['closed', 'api:root', 'api'],
    ]);
    expect(body.timeline[0]).toMatchObject({ reason: 'refund spike', liftedBy: 'api:root' });
    expect(body.timeline[1]).toMatchObject({ scopes: ['crm:*'], reason: 'crm too' });
    const audit = (await get('admin', '/v1/audit?agentId=bot-b')).body.entries as any[];
    for (const entry of body.timeline.slice(0, 3)) {
      const recorded = audit.find((a) => a.seq === entry.auditSeq);
      expect(recorded?.action).toBe(`agent.${entry.event}`);
    }
    const sorted = body.timeline.map((e: any) => e.at);
    expect([...sorted].sort()).toEqual(sorted);

    const ttl = (await get('admin', `/v1/incidents/${ttlIncident}`)).body;
    expect(ttl.timeline.map((e: any) => [e.event, e.actor, e.via])).toEqual([
      ['contain', 'api:root', 'api'],
      ['expired', 'system:ttl', 'system'],
      ['closed', 'system:ttl', 'system'],
    ]);
    expect(ttl.timeline[1].auditSeq).toEqual(expect.any(String));
  });

  it('platform tokens read every incident; an agent token only its own agent’s', async () => {
    expect((await get('platform', '/v1/incidents')).body.items).toHaveLength(4);
    expect((await get('platform', `/v1/incidents/${firstIncidentOfB}`)).status).toBe(200);
    expect((await get('botA', '/v1/incidents')).body.items).toEqual([]);
    const other = await get('botA', `/v1/incidents/${firstIncidentOfB}`);
    expect(other.status).toBe(403);
    expect(other.body.error.message).toContain('may only be used for agent bot-a');
    expect((await get('botA', '/v1/incidents?agentId=bot-b')).status).toBe(403);
    expect((await get('botA', '/v1/incidents?agentId=bot-a')).status).toBe(200);
    // An unknown incident looks the same to every token: 404.
    expect((await get('botA', '/v1/incidents/00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });

  it('bad input: 400 with what was wrong; unknown incident 404', async () => {
    for (const [path, words] of [
      ['/v1/incidents?status=pending', 'status'],
      ['/v1/incidents?limit=0', 'limit'],
      ['/v1/incidents?limit=201', 'limit'],
      ['/v1/incidents?cursor=abc', 'cursor'],
      [`/v1/incidents?cursor=${encodeCursor('agents', { id: 'bot-a' })}`, 'cursor'],
      ['/v1/incidents?agentId=..', 'agentId'],
      ['/v1/incidents?open=1', 'unknown field'],
      ['/v1/incidents/not-an-id', 'incident id'],
      [`/v1/incidents/${firstIncidentOfB}?verbose=1`, 'unknown field'],
    ] as const) {
      const res = await get('admin', path);
      expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.body.error.message).toContain(words);
    }
    expect((await get('admin', '/v1/incidents/00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });
});

describe('GET /v1/approval-requests', () => {
  const request = async (who: Who, agentId: string, action: string, key: string, context: Record<string, unknown> = {}) => {
    const res = await call(who, 'POST', '/v1/approval-requests', { agentId, action, context, justification: `needs ${action}`, idempotencyKey: key });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  };
  let mailA: string[];
  let payA: string;
  let mailF: string;

  beforeAll(async () => {
    mailA = [await request('admin', 'bot-a', 'mail:send', 'a1'), await request('botA', 'bot-a', 'mail:send', 'a2'), await request('platform', 'bot-a', 'mail:send', 'a3')];
    mailF = await request('admin', 'bot-f', 'mail:send', 'f1');
    payA = await request('admin', 'bot-a', 'payments:transfer', 'p1', { amount: 20000 });
    // A Slack user who is on the payment route only through the email the directory resolved for them.
    await app.approvals.decide(payA, { actor: 'slack:U0NEWRISK', platform: 'slack', slack: 'U0NEWRISK', emails: ['risk2@example.com'] }, 'approve', null);
    await app.approvals.cancel(mailA[0]!, 'api:root');
  });

  it('lists newest first in the shape of GET /v1/approval-requests/{id}, page by page', async () => {
    const all = await allPages('admin', '/v1/approval-requests', 2);
    expect(ids(all)).toEqual([payA, mailF, ...[...mailA].reverse()]);
    for (const item of all) expect(item).toEqual((await get('admin', `/v1/approval-requests/${item.id}`)).body);
  });

  it('filters by status, agent and approver (on the route, or decided by that person)', async () => {
    const list = async (query: string) => ids((await get('admin', `/v1/approval-requests?${query}`)).body.items);
    expect(await list('status=cancelled')).toEqual([mailA[0]]);
    expect(await list('agentId=bot-f')).toEqual([mailF]);
    expect(await list('agentId=bot-a&status=pending')).toEqual([payA, mailA[2], mailA[1]]);
    // On the mail route (security-oncall), not on the payment route (risk-owner + ciso).
    expect(await list('approver=slack:U0ONCALL1')).toEqual([mailF, ...[...mailA].reverse()]);
    expect(await list('approver=CISO@example.com')).toEqual([payA]);
    expect(await list('approver=slack:U0CISO')).toEqual([payA]);
    expect(await list('approver=risk2@example.com')).toEqual([payA]);
    // Not in the policy under this Slack id: matched by the decision they recorded.
    expect(await list('approver=slack:U0NEWRISK')).toEqual([payA]);
    expect(await list('approver=slack:U0NOBODY')).toEqual([]);
    expect(await list('approver=nobody@example.com')).toEqual([]);
  });

  it('a platform token lists every request; an agent token only its agent’s', async () => {
    expect((await get('platform', '/v1/approval-requests')).body.items).toHaveLength(5);
    expect(ids((await get('botA', '/v1/approval-requests')).body.items)).toEqual([payA, ...[...mailA].reverse()]);
    expect((await get('botA', '/v1/approval-requests?agentId=bot-f')).status).toBe(403);
  });

  it('bad query input is a 400, never a 500', async () => {
    for (const query of ['status=open', 'approver=U0CISO', 'approver=slack:', 'approver=teams:not-a-guid', 'limit=0', 'limit=999', 'cursor=%00', 'agentId=', 'wait=5']) {
      const res = await get('admin', `/v1/approval-requests?${query}`);
      expect(res.status, `${query}: ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.body.error.code).toBe('invalid_input');
    }
  });
});
