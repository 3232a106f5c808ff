import { afterAll, describe, expect } from 'vitest';
import { createArmaloClient, type ArmaloClient, type ArmaloClientOptions, type ChangeEvent } from '../sdk/src/index.js';
import { OTHER_TOKEN, sampleAgent, TOKEN, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { APPROVALS_TEST_POLICY } from './support/approvals-policy.js';
import { TcpProxy } from './support/tcp-proxy.js';

/**
 * The agent SDK end to end against the real service (its change stream, decisions and approval
 * requests, Postgres and Redis): what an agent using `@armalo/agent-sdk` sees.
 */

const AGENT_TOKEN = 'tok_agent_paybot_0123456789abcdef';
const OTHER_AGENT_TOKEN = 'tok_agent_otherbot_0123456789abc';
let app: TestApp;
let stopped = false;
const clients: ArmaloClient[] = [];
const agent = { ...sampleAgent, owner: 'owner@example.com', grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 100_000 } }, { scope: 'mail:send' }, { scope: 'crm:write' }] };

const slackUser = (id: string, emails: string[] = []) => ({ actor: `slack:${id}`, platform: 'slack' as const, slack: id, emails });
const approveWithQuorum = async (id: string) => {
  await app.approvals.decide(id, slackUser('U0RISK'), 'approve', 'ok by risk');
  await app.approvals.decide(id, slackUser('U0CISO', ['ciso@example.com']), 'approve', null);
};

function client(options: Partial<ArmaloClientOptions> = {}): ArmaloClient {
  const c = createArmaloClient({ url: app.url, token: AGENT_TOKEN, agentId: 'pay-bot', reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, ...options });
  clients.push(c);
  return c;
}

/** The id of the next approval request the client hears of on its stream. */
function nextRequestId(c: ArmaloClient): Promise<string> {
  return new Promise((resolve) => {
    const off = c.on('change', (e: ChangeEvent) => {
      if (e.kind === 'approval' && e.status === 'pending') {
        off();
        resolve(e.requestId);
      }
    });
  });
}

const it = appTest({
  policy: APPROVALS_TEST_POLICY,
  env: { ARMALO_API_TOKENS: `platform:${TOKEN},automation:${OTHER_TOKEN},pay-bot:${AGENT_TOKEN}:agent=pay-bot,other-bot:${OTHER_AGENT_TOKEN}:agent=other-bot` },
  appOptions: { relayPollMs: 200 },
});
it.beforeAll(async ({ app: started }) => {
  app = started;
  expect((await app.call('PUT', '/v1/agents/pay-bot', agent)).status).toBeLessThan(300);
});

afterAll(async () => {
  for (const c of clients) c.close();
  if (!stopped) await app?.stop();
});

describe('agent SDK against the service', () => {
  it('before ready: view_stale; after: check() answers what POST /v1/decisions answers', async () => {
    const c = client();
    expect(c.check('payments:transfer', { amount: 100 })).toMatchObject({ decision: 'deny', reasonCodes: ['view_stale'] });
    await c.ready({ timeoutMs: 10_000 });
    const cases: [string, Record<string, unknown>][] = [
      ['payments:transfer', { amount: 100 }],
      ['payments:transfer', { amount: 50_000 }],
      ['payments:transfer', { amount: 500_000 }],
      ['payments:refund', {}],
      ['crm:write', {}],
      ['mail:send', {}],
    ];
    for (const [action, context] of cases) {
      const local = c.check(action, context);
      const server = await c.decide(action, context);
      const { viewVersion: _l, ...localRest } = local;
      const { viewVersion: _s, ...serverRest } = server;
      expect(localRest, `${action} ${JSON.stringify(context)}`).toEqual(serverRest);
    }
    expect(c.check('payments:transfer', { amount: 100 })).toMatchObject({ decision: 'allow', agentStatus: 'active' });
    expect(c.check('payments:transfer', { amount: 50_000 })).toMatchObject({ decision: 'approval_required', reasonCodes: ['approval_required'] });
  });

  it('a wrong token rejects ready() with a typed 401; an agent token for another agent with a 403', async () => {
    await expect(client({ token: 'tok_not_a_real_token_000000000' }).ready()).rejects.toMatchObject({ name: 'ArmaloError', status: 401, code: 'unauthorized' });
    await expect(client({ token: OTHER_AGENT_TOKEN }).ready()).rejects.toMatchObject({ status: 403, code: 'forbidden' });
  });

  it('requireApproval resolves approved with the decisions; check() names the single-use approval without spending it; decide() uses it', async () => {
    const c = client();
    await c.ready();
    const context = { amount: 50_000 };
    const requested = nextRequestId(c);
    const outcome = c.requireApproval('payments:transfer', context, { justification: 'pay the reinsurer', timeoutMs: 30_000 });
    const id = await requested;
    await approveWithQuorum(id);
    const result = await outcome;
    expect(result).toMatchObject({ status: 'approved', requestId: id });
    expect(result.decisions.map((d) => [d.by, d.decision]).sort()).toEqual([
      ['slack:U0CISO', 'approve'],
      ['slack:U0RISK', 'approve'],
    ]);

    await waitFor(() => c.check('payments:transfer', context).approvalRequestId === id, 5000, 'the approval in the local copy');
    const local = c.check('payments:transfer', context);
    expect(local.decision).toBe('approval_required');
    expect(local.reasons[0]).toContain('decide()');
    expect(c.check('payments:transfer', context).approvalRequestId).toBe(id); // still unspent

    expect(await c.decide('payments:transfer', context)).toMatchObject({ decision: 'allow', approvalRequestId: id });
    expect((await c.decide('payments:transfer', context)).decision).toBe('approval_required');
    await waitFor(() => c.check('payments:transfer', context).approvalRequestId === undefined, 5000, 'the used approval to leave the local copy');
    expect(c.check('payments:transfer', context).decision).toBe('approval_required');
  });

  it('requireApproval resolves denied when an approver denies, with their reason', async () => {
    const c = client();
    await c.ready();
    const requested = nextRequestId(c);
    const outcome = c.requireApproval('payments:transfer', { amount: 70_000 }, { justification: 'bonus payout', timeoutMs: 30_000 });
    const id = await requested;
    await app.approvals.decide(id, slackUser('U0RISK'), 'deny', 'not budgeted');
    expect(await outcome).toEqual({ status: 'denied', requestId: id, decisions: [expect.objectContaining({ by: 'slack:U0RISK', decision: 'deny', reason: 'not budgeted', via: 'slack' })] });
    expect(c.check('payments:transfer', { amount: 70_000 }).approvalRequestId).toBeUndefined();
  });

  it('requireApproval: the same idempotencyKey is the same request; an unanswered one resolves timeout', async () => {
    const c = client();
    await c.ready();
    const options = { justification: 'large refund', timeoutMs: 300, idempotencyKey: 'refund-42' };
    const first = await c.requireApproval('payments:transfer', { amount: 20_000 }, options);
    expect(first).toEqual({ status: 'timeout', requestId: expect.any(String), decisions: [] });
    const again = await c.requireApproval('payments:transfer', { amount: 20_000 }, options);
    expect(again.requestId).toBe(first.requestId);
    await c.cancelApproval(first.requestId);
    const cancelled = await c.requireApproval('payments:transfer', { amount: 20_000 }, options);
    expect(cancelled).toMatchObject({ status: 'cancelled', requestId: first.requestId });
  });

  it('requireApproval falls back to long-polling when the stream is unavailable', async () => {
    let id: string | undefined;
    let polls = 0;
    const noStream: typeof fetch = async (input, init) => {
      const url = String(input);
      if (url.includes('/v1/stream')) {
        return new Response(JSON.stringify({ error: { code: 'unavailable', message: 'no stream here' } }), { status: 503, headers: { 'content-type': 'application/json' } });
      }
      if (url.includes('?wait=')) polls++;
      const res = await fetch(input, init);
      if (url.endsWith('/v1/approval-requests')) id = ((await res.clone().json()) as { id: string }).id;
      return res;
    };
    const c = client({ fetch: noStream });
    expect(c.check('payments:transfer', { amount: 1 }).reasonCodes).toEqual(['view_stale']);
    const outcome = c.requireApproval('payments:transfer', { amount: 30_000 }, { justification: 'quarterly settlement', timeoutMs: 30_000, idempotencyKey: 'settle-q4' });
    await waitFor(() => id !== undefined && polls > 0, 10_000, 'the request and a long-poll');
    await approveWithQuorum(id!);
    expect(await outcome).toMatchObject({ status: 'approved', requestId: id });
  });

  it('containment over REST turns check() into a deny, and restore back into an allow', async () => {
    const c = client();
    await c.ready();
    expect(c.check('crm:write').decision).toBe('allow');
    const contain = await app.call('POST', '/v1/agents/pay-bot/actions', { action: 'contain', reason: 'suspicious transfers' });
    expect(contain.status).toBeLessThan(300);
    await waitFor(() => c.check('crm:write').decision === 'deny', 5000, 'the containment');
    expect(c.check('crm:write')).toMatchObject({ reasonCodes: ['agent_contained'], agentStatus: 'contained' });
    expect(BigInt(c.viewVersion)).toBeGreaterThanOrEqual(BigInt(contain.body.version));
    const restore = await app.call('POST', '/v1/agents/pay-bot/actions', { action: 'restore', reason: 'false alarm' });
    expect(restore.status).toBeLessThan(300);
    await waitFor(() => c.check('crm:write').decision === 'allow', 5000, 'the restore');
  });

  it('after a network cut the client fails closed, then resumes with Last-Event-ID and gets the change it missed', async () => {
    const proxy = new TcpProxy('127.0.0.1', app.port());
    await proxy.start();
    try {
      const resumedFrom: (string | null)[] = [];
      const recording: typeof fetch = (input, init) => {
        if (String(input).includes('/v1/stream')) resumedFrom.push(new Headers(init?.headers).get('last-event-id'));
        return fetch(input, init);
      };
      const c = client({ url: `http://127.0.0.1:${proxy.port}`, staleAfterMs: 500, fetch: recording });
      await c.ready();
      expect(c.check('crm:write').decision).toBe('allow');
      const seen = c.viewVersion;
      await proxy.cut();
      const contain = await app.call('POST', '/v1/agents/pay-bot/actions', { action: 'contain', reason: 'cut off' });
      expect(contain.status).toBeLessThan(300);
      await waitFor(() => c.check('crm:write').reasonCodes[0] === 'view_stale', 5000, 'view_stale while cut off');
      await proxy.start();
      await waitFor(() => c.check('crm:write').reasonCodes[0] === 'agent_contained', 10_000, 'the missed containment');
      // Every reconnect asked to resume from the last version it had (the replica chooses a replay or a snapshot).
      expect(resumedFrom[0]).toBeNull();
      expect(resumedFrom.length).toBeGreaterThan(1);
      expect(resumedFrom.slice(1).every((v) => v === seen)).toBe(true);
      expect((await app.call('POST', '/v1/agents/pay-bot/actions', { action: 'restore', reason: 'back' })).status).toBeLessThan(300);
      await waitFor(() => c.check('crm:write').decision === 'allow', 5000, 'the restore');
    } finally {
      await proxy.stop();
    }
  });

  it('when the service goes away, check() fails closed with view_stale after staleAfterMs', async () => {
    const c = client({ staleAfterMs: 300 });
    await c.ready();
    expect(c.check('crm:write').decision).toBe('allow');
    stopped = true;
    await app.stop();
    await waitFor(() => c.check('crm:write').decision === 'deny', 10_000, 'view_stale');
    expect(c.check('crm:write')).toMatchObject({ reasonCodes: ['view_stale'] });
  });
});
