import { describe, expect, it } from 'vitest';
import { decisionAnswerBody, decisionAnswerJson, DecisionService, type DecisionAnswer, type DecisionView } from '../src/decisions/decision.service.js';
import type { Agent, OpenApproval } from '../src/domain/agent.js';
import { createMetrics } from '../src/observability/metrics.js';
import { parsePolicyData } from '../src/policy/load-policy.js';

/** Issue 11 items 1 and 3: the decision use case owns the whole answer and never throws. */
const now = new Date('2026-12-01T12:00:00Z');
const clock = { now: () => now };
const policy = parsePolicyData({
  roles: { 'risk-owner': { members: [{ slack: 'U0RISK' }] } },
  routing: [{ id: 'big-payments', match: { action: 'payments:*', context: { amountOver: 10000 } }, approvers: ['risk-owner'] }],
});
const agent: Agent = {
  id: 'svc-bot',
  name: 'Service bot',
  owner: 'owner@example.com',
  riskTier: 'low',
  status: 'active',
  version: 1n,
  grants: [{ id: 'g1', scope: 'payments:transfer', constraints: {}, keepInContainment: false, expiresAt: null, grantedBy: 'test', grantedAt: now }],
  activeActions: [],
  updatedAt: now,
  trustTier: 'gold',
  trustScore: 800,
  newestEvidenceAt: now,
};
const approved = (id: string, grantUntil: Date | null = null): OpenApproval => ({ id, agentId: agent.id, action: 'payments:transfer', context: { amount: 20000 }, status: 'approved', createdAt: now, decidedAt: now, grantUntil });

function view(overrides: Partial<DecisionView> = {}, approvals: OpenApproval[] = []): DecisionView & { used: string[] } {
  const used: string[] = [];
  return { get: (id) => (id === agent.id ? agent : undefined), isFresh: () => true, approvalsFor: () => approvals, approvalUsed: async (_a, id) => void used.push(id), used, ...overrides };
}

async function errorCount(metrics: ReturnType<typeof createMetrics>, reason: string): Promise<number> {
  const m = await metrics.decisionErrors.get();
  return m.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

const big = { agentId: agent.id, action: 'payments:transfer', context: { amount: 20000 } };

describe('DecisionService', () => {
  it('answers synchronously from memory when no approval must be used up', () => {
    const metrics = createMetrics();
    const service = new DecisionService({ view: view(), clock, metrics, rules: policy.routing, approvals: { consume: () => Promise.reject(new Error('must not be asked')) } });
    const small = service.decide({ ...big, context: { amount: 10 } });
    expect(small).not.toBeInstanceOf(Promise);
    expect((small as { decision: { decision: string } }).decision.decision).toBe('allow');
    const needs = service.decide(big) as { decision: { decision: string; reasons: { code: string; message: string }[] } };
    expect(needs.decision.decision).toBe('approval_required');
    expect(needs.decision.reasons[0]!.message).toContain('big-payments');
  });

  it('a grant window allows without asking Postgres; a single-use approval is used once, then forgotten', async () => {
    const metrics = createMetrics();
    const windowed = new DecisionService({ view: view({}, [approved('w1', new Date(now.getTime() + 3600_000))]), clock, metrics, rules: policy.routing, approvals: { consume: () => Promise.reject(new Error('must not be asked')) } });
    expect(windowed.decide(big)).toMatchObject({ decision: { decision: 'allow' }, approvalRequestId: 'w1' });

    const v = view({}, [approved('s1')]);
    const asked: string[][] = [];
    const service = new DecisionService({ view: v, clock, metrics, rules: policy.routing, approvals: { consume: async (_agentId, ids) => (asked.push([...ids]), ids[0]) } });
    expect(await service.decide(big)).toMatchObject({ decision: { decision: 'allow', reasons: [{ code: 'granted' }, { code: 'approved' }] }, approvalRequestId: 's1' });
    expect(asked).toEqual([['s1']]);
    expect(v.used).toEqual(['s1']);
  });

  it('Postgres unreachable while using an approval: deny with view_stale, counted', async () => {
    const metrics = createMetrics();
    const service = new DecisionService({ view: view({}, [approved('s1')]), clock, metrics, rules: policy.routing, approvals: { consume: () => Promise.reject(new Error('connect ECONNREFUSED')) } });
    const answer = await service.decide(big);
    expect(answer.decision).toEqual({ decision: 'deny', reasons: [{ code: 'view_stale', message: expect.stringContaining('failing closed') }] });
    expect(await errorCount(metrics, 'view_stale')).toBe(1);
  });

  it('Postgres silent while using an approval: deny with view_stale after the deadline', async () => {
    const metrics = createMetrics();
    const service = new DecisionService({ view: view({}, [approved('s1')]), clock, metrics, rules: policy.routing, approvals: { consume: () => new Promise(() => undefined) }, consumeWaitMs: 50 });
    expect((await service.decide(big)).decision.reasons[0]!.code).toBe('view_stale');
  });

  it('anything else that throws on the decision path: deny with decision_error, counted, never an exception', async () => {
    const metrics = createMetrics();
    const broken = view({
      approvalsFor: () => {
        throw new Error('corrupt view');
      },
    });
    const service = new DecisionService({ view: broken, clock, metrics, rules: policy.routing });
    const answer = service.decide(big);
    expect(answer).toMatchObject({ decision: { decision: 'deny', reasons: [{ code: 'decision_error' }] }, agentStatus: 'active' });
    expect(await errorCount(metrics, 'decision_error')).toBe(1);
  });

  it('the answer text built directly is byte for byte the JSON of the answer body, for every shape of answer', () => {
    const answers: DecisionAnswer[] = [
      { decision: { decision: 'allow', reasons: [{ code: 'granted', message: 'allowed by grant crm:read' }], grantId: 'e85ec2c1-2fb8-4c4f-98f6-d744ab703450' }, agentStatus: 'active' },
      {
        decision: { decision: 'allow', reasons: [{ code: 'granted', message: 'allowed by grant payments:*' }, { code: 'approved', message: 'approved by request r1 (rule big-payments)' }], grantId: 'g1' },
        agentStatus: 'contained',
        approvalRequestId: 'r1',
      },
      { decision: { decision: 'approval_required', reasons: [{ code: 'approval_required', message: 'payments:transfer needs approval; request "r2" is pending' }] }, agentStatus: 'active', approvalRequestId: 'r2' },
      { decision: { decision: 'deny', reasons: [{ code: 'unknown_agent', message: 'unknown agent bot\u2028"\\\n\u0001\ud83d\ude00 é' }] }, agentStatus: null },
      { decision: { decision: 'deny', reasons: [] }, agentStatus: 'revoked' },
    ];
    for (const version of [0n, 7n, 7n, 12345678901234567890n, 3n]) {
      for (const answer of answers) expect(decisionAnswerJson(answer, version)).toBe(JSON.stringify(decisionAnswerBody(answer, version)));
    }
  });

  it('an allow is one shared, frozen answer per grant, and its kept text still follows the version and the status', () => {
    const service = new DecisionService({ view: view(), clock, metrics: createMetrics(), rules: policy.routing });
    const first = service.decide({ agentId: 'svc-bot', action: 'payments:transfer', context: { amount: 5 } }) as DecisionAnswer;
    const second = service.decide({ agentId: 'svc-bot', action: 'payments:transfer', context: { amount: 6 } }) as DecisionAnswer;
    expect(second.decision).toBe(first.decision);
    expect(Object.isFrozen(first.decision) && Object.isFrozen(first.decision.reasons)).toBe(true);
    // Nothing may edit the shared answer: it would change every later answer for that grant.
    expect(() => (first.decision.reasons as unknown[]).push({ code: 'approved', message: 'x' })).toThrow();
    const variants: DecisionAnswer[] = [first, second, { ...second, agentStatus: 'narrowed' }, first, { ...first, approvalRequestId: 'r9' }, first];
    for (const version of [1n, 1n, 2n, 99n, 2n]) {
      for (const answer of variants) expect(decisionAnswerJson(answer, version)).toBe(JSON.stringify(decisionAnswerBody(answer, version)));
    }
    // A contained agent's grant kept in containment is allowed with its own (shared) answer.
    const held: Agent = {
      ...agent,
      status: 'contained',
      grants: [{ ...agent.grants[0]!, keepInContainment: true }],
      activeActions: [{ id: 'a1', kind: 'contain', scopes: [], reason: 'drill', actor: 'test', createdAt: now, expiresAt: null, touched: [] }],
    };
    const heldService = new DecisionService({ view: view({ get: (id) => (id === held.id ? held : undefined) }), clock, metrics: createMetrics(), rules: [] });
    const kept = heldService.decide({ agentId: 'svc-bot', action: 'payments:transfer', context: {} }) as DecisionAnswer;
    expect(kept.decision.reasons.map((r) => r.message)).toEqual(['allowed by grant payments:transfer', 'agent is contained; grant payments:transfer is kept in containment']);
    expect(decisionAnswerJson(kept, 5n)).toBe(JSON.stringify(decisionAnswerBody(kept, 5n)));
  });
});
