import { describe, expect } from 'vitest';
import { sampleAgent, TOKEN, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { APPROVALS_TEST_POLICY } from './support/approvals-policy.js';

/**
 * DESIGN §5 "API tokens carry a scope": every endpoint class against every scope, an agent token
 * on its own agent and on another, and PUT refusing to widen a contained or revoked agent.
 */
const TOKENS = {
  /** Scope left out: admin. */
  root: TOKEN,
  admin: 'tok_explicit_admin_0123456789abcdef',
  platform: 'tok_platform_scope_0123456789abcdef',
  botA: 'tok_agent_bot_a_0123456789abcdef',
} as const;
type Who = keyof typeof TOKENS;

let app: TestApp;
const agent = { ...sampleAgent, owner: 'owner@example.com' };

const call = (who: Who, method: string, path: string, body?: unknown) => app.call(method, path, body, { token: TOKENS[who] });
/** The status of a call whose answer may be an endless stream: the body is not waited for. */
async function statusOnly(who: Who, method: string, path: string): Promise<{ status: number; body: unknown }> {
  const aborter = new AbortController();
  const res = await fetch(app.url + path, { method, headers: { authorization: `Bearer ${TOKENS[who]}` }, signal: aborter.signal });
  const body = res.headers.get('content-type')?.includes('application/json') ? await res.json() : undefined;
  aborter.abort();
  return { status: res.status, body };
}
const mailRequest = (agentId: string, key: string) => ({ agentId, action: 'mail:send', justification: 'weekly report', idempotencyKey: key });
async function requestFor(who: Who, agentId: string, key: string): Promise<string> {
  const res = await call(who, 'POST', '/v1/approval-requests', mailRequest(agentId, key));
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

const it = appTest({
  policy: APPROVALS_TEST_POLICY,
  env: { ARMALO_API_TOKENS: `root:${TOKENS.root},explicit:${TOKENS.admin}:admin,platform-svc:${TOKENS.platform}:platform,bot-a-mcp:${TOKENS.botA}:agent=bot-a` },
});
it.beforeAll(async ({ app: started }) => {
  app = started;
  for (const id of ['bot-a', 'bot-b']) expect((await call('root', 'PUT', `/v1/agents/${id}`, agent)).status).toBe(201);
});

interface Endpoint {
  name: string;
  needs: 'admin' | 'platform';
  /** Builds the request for one agent, as one token (some need a record made first). */
  request: (agentId: string, who: Who) => Promise<[method: string, path: string, body?: unknown]>;
}

const endpoints: Endpoint[] = [
  // Admin only: registering, acting, trust writes, audit, packets.
  { name: 'register/update an agent', needs: 'admin', request: async (id) => ['PUT', `/v1/agents/${id}`, agent] },
  { name: 'act on an agent (dry run)', needs: 'admin', request: async (id) => ['POST', `/v1/agents/${id}/actions`, { action: 'contain', reason: 'drill', dryRun: true }] },
  { name: 'write a pact', needs: 'admin', request: async (id) => ['POST', `/v1/agents/${id}/pacts`, { nope: true }] },
  { name: 'read pacts', needs: 'admin', request: async (id) => ['GET', `/v1/agents/${id}/pacts`] },
  { name: 'record an evaluation', needs: 'admin', request: async (id) => ['POST', `/v1/agents/${id}/evaluations`, { nope: true }] },
  { name: 'read the audit', needs: 'admin', request: async (id) => ['GET', `/v1/audit?agentId=${id}`] },
  { name: 'verify the audit', needs: 'admin', request: async () => ['GET', '/v1/audit/verify'] },
  { name: 'request a packet', needs: 'admin', request: async (id) => ['POST', '/v1/trust-packets', { agentId: id }] },
  { name: 'read a packet', needs: 'admin', request: async () => ['GET', '/v1/trust-packets/00000000-0000-4000-8000-000000000000'] },
  { name: 'verify a packet', needs: 'admin', request: async () => ['GET', '/v1/trust-packets/00000000-0000-4000-8000-000000000000/verify'] },
  // Platform: decisions, approval requests, reading agents and scores.
  { name: 'read an agent', needs: 'platform', request: async (id) => ['GET', `/v1/agents/${id}`] },
  { name: 'read a score', needs: 'platform', request: async (id) => ['GET', `/v1/agents/${id}/score`] },
  { name: 'ask for a decision', needs: 'platform', request: async (id) => ['POST', '/v1/decisions', { agentId: id, action: 'crm:write' }] },
  { name: 'create an approval request', needs: 'platform', request: async (id, who) => ['POST', '/v1/approval-requests', mailRequest(id, `create-${who}-${id}`)] },
  { name: 'read an approval request', needs: 'platform', request: async (id) => ['GET', `/v1/approval-requests/${await requestFor('root', id, `read-${id}-${Math.random()}`)}`] },
  { name: 'wait on an approval request', needs: 'platform', request: async (id) => ['GET', `/v1/approval-requests/${await requestFor('root', id, `wait-${id}-${Math.random()}`)}?wait=1`] },
  {
    name: 'cancel an approval request',
    needs: 'platform',
    // Only the requester may cancel: each token cancels its own request, except that an agent
    // token cannot make one for another agent (root makes that one).
    request: async (id, who) => ['POST', `/v1/approval-requests/${await requestFor(who === 'botA' && id !== 'bot-a' ? 'root' : who, id, `cancel-${who}-${id}`)}/cancel`],
  },
];

const cases = endpoints.flatMap((e) => (['root', 'admin', 'platform', 'botA'] as Who[]).flatMap((who) => ['bot-a', 'bot-b'].map((agentId) => ({ ...e, who, agentId }))));

describe('each scope against each endpoint class', () => {
  it.each(cases)('$who: $name for $agentId', async ({ needs, who, agentId, request }) => {
    const [method, path, body] = await request(agentId, who);
    const res = await call(who, method, path, body);
    const adminToken = who === 'root' || who === 'admin';
    if (needs === 'admin' && !adminToken) {
      expect(res.status, JSON.stringify(res.body)).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
      expect(res.body.error.message).toContain('it needs a token with scope admin');
      expect(res.body.error.message).toContain(who === 'botA' ? 'scope agent=bot-a' : 'scope platform');
    } else if (who === 'botA' && agentId !== 'bot-a') {
      expect(res.status, JSON.stringify(res.body)).toBe(403);
      expect(res.body.error.message).toBe('this token (scope agent=bot-a) may only be used for agent bot-a, not for agent bot-b');
    } else {
      // Allowed through: whatever the endpoint answers, it is not an authorization refusal.
      expect([401, 403], `${method} ${path}: ${JSON.stringify(res.body)}`).not.toContain(res.status);
      expect(res.status).toBeLessThan(500);
    }
  });
});

describe('the OpenAPI document and the router agree on what each operation needs', () => {
  it('every operation marked x-token-scope: admin refuses a platform token; every platform one lets it through', async () => {
    const doc = (await app.call('GET', '/v1/openapi.json', undefined, { token: null })).body;
    const checked: string[] = [];
    for (const [template, item] of Object.entries(doc.paths as Record<string, Record<string, { 'x-token-scope'?: string; responses?: Record<string, { content?: object }> }>>)) {
      for (const [method, op] of Object.entries(item)) {
        const scope = op['x-token-scope'];
        if (!scope) continue;
        const path = template.replace('{agentId}', 'bot-a').replace('{id}', '00000000-0000-4000-8000-000000000000');
        // No body: an allowed call answers 400 or 404, a refused one 403 before the body is read.
        // A stream (the change stream, MCP) may stay open when allowed: only its status is read.
        const streams = Object.hasOwn(op.responses?.['200']?.content ?? {}, 'text/event-stream');
        const res = streams ? await statusOnly('platform', method.toUpperCase(), path) : await call('platform', method.toUpperCase(), path);
        if (scope === 'admin') expect(res.status, `${method} ${template}`).toBe(403);
        else expect([401, 403], `${method} ${template}: ${JSON.stringify(res.body)}`).not.toContain(res.status);
        checked.push(`${scope} ${method} ${template}`);
      }
    }
    expect(checked.length).toBeGreaterThanOrEqual(16);
  });
});

describe('what a refusal leaves behind: nothing', () => {
  it('a platform token cannot add a keepInContainment grant or contain; the agent is unchanged', async () => {
    const before = (await call('root', 'GET', '/v1/agents/bot-a')).body;
    const widened = { ...agent, grants: [...agent.grants, { scope: 'ops:*', keepInContainment: true }] };
    expect((await call('platform', 'PUT', '/v1/agents/bot-a', widened)).status).toBe(403);
    expect((await call('botA', 'PUT', '/v1/agents/bot-a', widened)).status).toBe(403);
    expect((await call('botA', 'POST', '/v1/agents/bot-a/actions', { action: 'restore', reason: 'let me out' })).status).toBe(403);
    expect((await call('platform', 'POST', '/v1/agents/bot-a/actions', { action: 'contain', reason: 'x' })).status).toBe(403);
    const after = (await call('root', 'GET', '/v1/agents/bot-a')).body;
    expect(after.grants).toEqual(before.grants);
    expect(after.status).toBe('active');
  });

  it('an agent token cannot read or cancel another agent\'s approval request; it stays pending', async () => {
    const id = await requestFor('root', 'bot-b', 'not-yours');
    const read = await call('botA', 'GET', `/v1/approval-requests/${id}`);
    expect(read.status).toBe(403);
    expect(JSON.stringify(read.body)).not.toContain('weekly report');
    expect((await call('botA', 'POST', `/v1/approval-requests/${id}/cancel`)).status).toBe(403);
    expect((await call('root', 'GET', `/v1/approval-requests/${id}`)).body.status).toBe('pending');
  });

  it('an agent token\'s decisions for its own agent answer as usual; for another agent, 403 rather than a decision', async () => {
    const own = await call('botA', 'POST', '/v1/decisions', { agentId: 'bot-a', action: 'crm:write' });
    expect(own.status).toBe(200);
    expect(own.body.decision).toBe('allow');
    const other = await call('botA', 'POST', '/v1/decisions', { agentId: 'bot-b', action: 'crm:write' });
    expect(other.status).toBe(403);
    expect(other.body.decision).toBeUndefined();
  });

  it('the actor of an agent token\'s request is its name', async () => {
    const res = await call('botA', 'POST', '/v1/approval-requests', mailRequest('bot-a', 'actor-check'));
    expect(res.status).toBe(201);
    const audit = await call('root', 'GET', '/v1/audit?agentId=bot-a');
    expect(audit.body.entries.some((e: { actor: string; action: string }) => e.actor === 'api:bot-a-mcp' && e.action === 'approval.requested')).toBe(true);
  });
});

describe('PUT /v1/agents/{id} never widens a contained or revoked agent', () => {
  const base = {
    name: 'Payments bot',
    owner: 'owner@example.com',
    riskTier: 'high',
    grants: [
      { scope: 'payments:transfer', constraints: { maxAmount: 1000, currencies: ['USD'] } },
      { scope: 'mail:send', keepInContainment: true },
      { scope: 'crm:write', expiresAt: '2099-01-01T00:00:00.000Z' },
    ],
  };
  const grants = (i: number, g: Record<string, unknown>) => ({ ...base, grants: base.grants.map((x, j) => (j === i ? g : x)) });

  async function heldAgent(id: string, kind: 'contain' | 'revoke') {
    expect((await call('root', 'PUT', `/v1/agents/${id}`, base)).status).toBe(201);
    expect((await call('root', 'POST', `/v1/agents/${id}/actions`, { action: kind, reason: 'incident drill' })).status).toBe(201);
  }

  const widenings: [string, unknown, string][] = [
    ['a new grant', { ...base, grants: [...base.grants, { scope: 'payments:refund' }] }, 'grant payments:refund would be new'],
    ['a new keepInContainment', grants(0, { ...base.grants[0], keepInContainment: true }), 'newly be kept in containment'],
    ['a higher maxAmount', grants(0, { scope: 'payments:transfer', constraints: { maxAmount: 1_000_000, currencies: ['USD'] } }), 'raise maxAmount from 1000 to 1000000'],
    ['a removed maxAmount', grants(0, { scope: 'payments:transfer', constraints: { currencies: ['USD'] } }), 'lose its maxAmount limit'],
    ['a removed constraint list', grants(0, { scope: 'payments:transfer', constraints: { maxAmount: 1000 } }), 'lose its currencies limit'],
    ['a removed expiry', grants(2, { scope: 'crm:write' }), 'lose its expiry'],
  ];

  it.each(widenings)('contained: %s is 409 with the reason, and nothing changes', async (name, body, says) => {
    const id = `held-${name.replace(/\W+/g, '-')}`;
    await heldAgent(id, 'contain');
    const before = (await call('root', 'GET', `/v1/agents/${id}`)).body;
    const res = await call('root', 'PUT', `/v1/agents/${id}`, body);
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.error.code).toBe('conflict');
    expect(res.body.error.message).toContain(`agent ${id} is contained: this update would widen it`);
    expect(res.body.error.message).toContain(says);
    expect(res.body.error.details[0].message).toContain(says);
    const after = (await call('root', 'GET', `/v1/agents/${id}`)).body;
    expect(after.grants).toEqual(before.grants);
    expect(after.status).toBe('contained');
  });

  it('revoked: a new keepInContainment grant is 409 too', async () => {
    await heldAgent('held-revoked', 'revoke');
    const res = await call('root', 'PUT', '/v1/agents/held-revoked', { ...base, grants: [...base.grants, { scope: 'ops:*', keepInContainment: true }] });
    expect(res.status).toBe(409);
    expect(res.body.error.message).toContain('is revoked');
  });

  it('contained: a no-op update is 200, and narrowing updates are applied', async () => {
    await heldAgent('held-narrowing', 'contain');
    expect((await call('root', 'PUT', '/v1/agents/held-narrowing', base)).status).toBe(200);
    const narrower = {
      ...base,
      name: 'Payments bot (renamed)',
      grants: [
        { scope: 'payments:transfer', constraints: { maxAmount: 10, currencies: ['USD'] } },
        { scope: 'crm:write', expiresAt: '2098-01-01T00:00:00.000Z' },
      ],
    };
    const res = await call('root', 'PUT', '/v1/agents/held-narrowing', narrower);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.status).toBe('contained');
    expect(res.body.name).toBe('Payments bot (renamed)');
    expect(res.body.grants.map((g: { scope: string }) => g.scope).sort()).toEqual(['crm:write', 'payments:transfer']);
    expect(res.body.grants.find((g: { scope: string }) => g.scope === 'payments:transfer').constraints.maxAmount).toBe(10);
  });

  it('an active agent may still be widened by an admin token', async () => {
    expect((await call('root', 'PUT', '/v1/agents/free-bot', base)).status).toBe(201);
    const res = await call('root', 'PUT', '/v1/agents/free-bot', { ...base, grants: [...base.grants, { scope: 'payments:refund', keepInContainment: true }] });
    expect(res.status).toBe(200);
  });
});
