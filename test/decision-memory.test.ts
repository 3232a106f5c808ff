import pg from 'pg';
import { afterAll, describe, expect } from 'vitest';
import { waitFor, type TestApp } from './support/app.js';
import { PG_BASE } from './support/database.js';
import { appTest } from './support/fixture.js';
import { decisionOf } from './support/drive.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { SIGNATURE_HEADER, signPayload } from '../src/webhooks/signature.js';

/**
 * Issue 11 items 1-2: a decision is answered from the replica's view, routing rules and trust
 * included. Postgres is asked only to use up a single-use approval, in one statement. Replica A
 * reaches Postgres through a proxy so the test can count exactly the statements A sends.
 */
const POLICY = `
roles:
  risk-owner: { members: [{ slack: U0RISK }] }
  ciso: { members: [{ slack: U0CISO }] }
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [risk-owner]
  - id: stale-crm
    match: { action: "crm:*", evidenceOlderThan: 30d }
    approvers: [ciso]
  - id: low-trust-mail
    match: { action: "mail:send", tierBelow: silver }
    approvers: [ciso]
  - id: low-score-refunds
    match: { action: "payments:refund", scoreBelow: 500 }
    approvers: [ciso]
`;
const day = 86_400_000;
const agent = {
  name: 'Memory bot',
  owner: 'owner@example.com',
  riskTier: 'low',
  grants: [{ scope: 'payments:transfer' }, { scope: 'payments:refund' }, { scope: 'docs:read' }, { scope: 'crm:write' }, { scope: 'mail:send' }],
};
const WEBHOOK_SECRET = 'whsec-decision-memory-0123456789abcdef';
const risk = { actor: 'slack:U0RISK', platform: 'slack' as const, slack: 'U0RISK', emails: [] as string[] };

const pgTarget = new URL(PG_BASE);
const proxy = new TcpProxy(pgTarget.hostname, Number(pgTarget.port || 5432));
let proxyPort = 0;
let a: TestApp;
let b: TestApp;

/** Every statement replica A sends to Postgres (the pool's clients of A connect to the proxy's port). */
const statementsOfA: string[] = [];
const originalQuery = pg.Client.prototype.query;

const it = appTest({ policy: POLICY, env: { ARMALO_ROLE: 'web', ARMALO_WEBHOOK_SECRET: WEBHOOK_SECRET } });
it.beforeAll(async ({ database, startApp }) => {
  proxyPort = await proxy.start();
  const proxied = new URL(database.url);
  proxied.port = String(proxyPort);
  const patched = function (this: pg.Client & { port?: number }, ...args: unknown[]) {
    if (this.port === proxyPort) {
      const first = args[0] as string | { text?: string };
      statementsOfA.push(typeof first === 'string' ? first : (first?.text ?? ''));
    }
    return (originalQuery as (...a: unknown[]) => unknown).apply(this, args);
  };
  pg.Client.prototype.query = patched as typeof pg.Client.prototype.query;
  // A: its own heartbeat is slow, so nothing but the decisions under test talks to Postgres.
  a = await startApp({ databaseUrl: proxied.toString(), env: { ARMALO_VIEW_STALE_AFTER_MS: '60000' }, appOptions: { heartbeatMs: 25_000 } });
  b = await startApp();
});

afterAll(async () => {
  pg.Client.prototype.query = originalQuery;
  await a?.stop();
  await b?.stop();
  await proxy.stop();
});

const decide = (on: TestApp, agentId: string, action: string, context: Record<string, unknown> = {}) => decisionOf(on, agentId, action, context);

/** The statements A sent to Postgres while `fn` ran. */
async function statementsDuring(fn: () => Promise<unknown>): Promise<string[]> {
  const from = statementsOfA.length;
  await fn();
  return statementsOfA.slice(from);
}

const evaluation = (id: string, ageDays: number, passed: boolean) => ({ id, dimension: 'safety', passed, observedAt: new Date(Date.now() - ageDays * day).toISOString(), source: 'redteam' });

describe('decisions under routing rules, from memory', () => {
  it('an action no rule covers, and a covered one without a usable approval, send no statement to Postgres', async () => {
    expect((await a.call('PUT', '/v1/agents/mem-bot', agent)).status).toBe(201);
    await a.call('POST', '/v1/agents/mem-bot/evaluations', evaluation('m-1', 1, true));
    const uncovered = await statementsDuring(async () => {
      for (let i = 0; i < 5; i++) expect((await decide(a, 'mem-bot', 'docs:read')).decision).toBe('allow');
    });
    expect(uncovered).toEqual([]);

    const big = { amount: 20_000 };
    let answer: Awaited<ReturnType<typeof decide>> | undefined;
    const covered = await statementsDuring(async () => {
      answer = await decide(a, 'mem-bot', 'payments:transfer', big);
    });
    expect(answer!.decision).toBe('approval_required');
    expect(answer!.reasons[0]).toContain('big-payments');
    expect(covered).toEqual([]);

    // A pending request: the answer names it, still from memory.
    const created = await a.call('POST', '/v1/approval-requests', { agentId: 'mem-bot', action: 'payments:transfer', context: big, justification: 'payout' });
    expect(created.status).toBe(201);
    const pending = await statementsDuring(async () => {
      answer = await decide(a, 'mem-bot', 'payments:transfer', big);
    });
    expect(answer!.decision).toBe('approval_required');
    expect(answer!.approvalRequestId).toBe(created.body.id);
    expect(pending).toEqual([]);

    // Approved (single use): exactly one statement uses it up, and it allows exactly once.
    await a.approvals.decide(created.body.id, risk, 'approve', null);
    const consuming = await statementsDuring(async () => {
      answer = await decide(a, 'mem-bot', 'payments:transfer', big);
    });
    expect(answer!.decision).toBe('allow');
    expect(answer!.approvalRequestId).toBe(created.body.id);
    expect(consuming.filter((q) => /^update "approval_requests"/.test(q))).toHaveLength(1);
    expect(consuming.filter((q) => /trust_scores|evaluations/.test(q))).toEqual([]);
    expect((await decide(a, 'mem-bot', 'payments:transfer', big)).decision).toBe('approval_required');
    // The other replica may have held the approval as usable, but cannot use it a second time.
    await waitFor(async () => (await decide(b, 'mem-bot', 'payments:transfer', big)).decision === 'approval_required', 5000, 'replica B to see the approval used');
  });

  it('a single-use approval is used exactly once across two replicas racing for it', async () => {
    await a.call('PUT', '/v1/agents/race-bot', agent);
    const big = { amount: 15_000 };
    const created = await a.call('POST', '/v1/approval-requests', { agentId: 'race-bot', action: 'payments:transfer', context: big, justification: 'race' });
    await a.approvals.decide(created.body.id, risk, 'approve', null);
    await waitFor(async () => b.view!.approvalsFor('race-bot').some((x) => x.status === 'approved'), 5000, 'replica B to hold the approval');
    const answers = await Promise.all([...Array(5)].flatMap(() => [decide(a, 'race-bot', 'payments:transfer', big), decide(b, 'race-bot', 'payments:transfer', big)]));
    expect(answers.filter((x) => x.decision === 'allow')).toHaveLength(1);
    expect(answers.filter((x) => x.decision === 'approval_required')).toHaveLength(9);
  });

  it('fresh evidence and a changed tier or score change the next answer, on both replicas', async () => {
    await a.call('PUT', '/v1/agents/trust-bot', agent);
    await a.call('POST', '/v1/agents/trust-bot/evaluations', evaluation('t-1', 40, true));
    for (const on of [a, b]) {
      await waitFor(async () => (await decide(on, 'trust-bot', 'crm:write')).decision === 'approval_required', 5000, 'stale evidence to need approval');
    }
    expect((await decide(a, 'trust-bot', 'crm:write')).reasons[0]).toContain('evidence older than 30d');
    // High score from a pass: mail and refunds are allowed by the grants alone.
    expect((await decide(a, 'trust-bot', 'mail:send')).decision).toBe('allow');
    expect((await decide(b, 'trust-bot', 'payments:refund', { amount: 10 })).decision).toBe('allow');

    // Fresh evidence: the stale-evidence rule no longer matches, on both replicas.
    await a.call('POST', '/v1/agents/trust-bot/evaluations', evaluation('t-2', 0, true));
    expect((await decide(a, 'trust-bot', 'crm:write')).decision).toBe('allow');
    await waitFor(async () => (await decide(b, 'trust-bot', 'crm:write')).decision === 'allow', 5000, 'replica B to see the fresh evidence');

    // Four fresh failures: score about 2 of 6 (bronze): below silver and below 500.
    for (const id of ['t-3', 't-4', 't-5', 't-6']) await a.call('POST', '/v1/agents/trust-bot/evaluations', evaluation(id, 0, false));
    const mail = await decide(a, 'trust-bot', 'mail:send');
    expect(mail.decision).toBe('approval_required');
    expect(mail.reasons[0]).toContain('tier bronze below silver');
    await waitFor(async () => (await decide(b, 'trust-bot', 'mail:send')).decision === 'approval_required', 5000, 'replica B to see the new tier');
    const refund = await decide(b, 'trust-bot', 'payments:refund', { amount: 10 });
    expect(refund.decision).toBe('approval_required');
    expect(refund.reasons[0]).toMatch(/score \d+ below 500/);
  });

  it('an external score (signed webhook) that changes the tier reaches the next decision on both replicas', async () => {
    await a.call('PUT', '/v1/agents/score-bot', agent);
    await a.call('POST', '/v1/agents/score-bot/evaluations', evaluation('sc-1', 0, true));
    for (const on of [a, b]) expect((await decide(on, 'score-bot', 'mail:send')).decision).toBe('allow');
    const body = JSON.stringify({ id: 'evt-score-1', type: 'score.changed', createdAt: new Date().toISOString(), data: { agentId: 'score-bot', score: 300, tier: 'bronze' } });
    const res = await fetch(`${b.url}/webhooks/armalo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signPayload(WEBHOOK_SECRET, body, Math.floor(Date.now() / 1000)) },
      body,
    });
    expect(res.status).toBe(200);
    for (const on of [b, a]) {
      await waitFor(async () => (await decide(on, 'score-bot', 'mail:send')).decision === 'approval_required', 5000, 'the new tier to route mail');
    }
    expect((await decide(a, 'score-bot', 'payments:refund', { amount: 10 })).reasons[0]).toContain('score 300 below 500');
  });
});
