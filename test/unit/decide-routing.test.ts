import { describe, expect, it } from 'vitest';
import type { Agent, OpenApproval } from '../../src/domain/agent.js';
import { approvalRequired, approvedBy, hasApprovalRouting, routeDecision, type Decision, type DecisionRequest } from '../../src/domain/decide.js';
import { parsePolicyText } from '../../src/policy/load-policy.js';

/** The routed step of a decision: which approval lets an allowed action through, and what is answered otherwise. */

const now = new Date('2026-11-27T12:00:00Z');
const ago = (ms: number) => new Date(now.getTime() - ms);
const rules = parsePolicyText(`
roles:
  finance: { members: [{ slack: U0FIN }] }
routing:
  - id: notify-only
    match: { action: "payments:*" }
    addApprovers: [finance]
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 1000 } }
    approvers: [finance]
  - id: low-trust
    match: { action: "crm:*", scoreBelow: 500, evidenceOlderThan: 7d }
    approvers: [finance]
`).routing;

const agent = (extra: Partial<Agent> = {}): Agent => ({
  id: 'bot',
  name: 'Bot',
  owner: 'o@example.com',
  riskTier: 'low',
  status: 'active',
  version: 1n,
  grants: [],
  activeActions: [],
  updatedAt: now,
  ...extra,
});
const allowed: Decision = { decision: 'allow', reasons: [{ code: 'granted', message: 'allowed by grant payments:*' }], grantId: 'g1' };
const pay = (context: Record<string, unknown>): DecisionRequest => ({ agentId: 'bot', action: 'payments:transfer', context });
const approval = (id: string, over: Partial<OpenApproval> = {}): OpenApproval => ({
  id,
  agentId: 'bot',
  action: 'payments:transfer',
  context: { amount: 5000, currency: 'USD' },
  status: 'approved',
  createdAt: ago(60_000),
  decidedAt: ago(30_000),
  grantUntil: null,
  ...over,
});
const REQUIRED = 'payments:transfer needs approval under routing rule big-payments (action payments:transfer matches payments:*, amount 5000 over 1000)';

describe('routeDecision', () => {
  it('no rule with approvers matches: the allow stands', () => {
    expect(routeDecision(allowed, agent(), pay({ amount: 1000 }), rules, [], now)).toEqual({ kind: 'final', decision: allowed });
    expect(hasApprovalRouting(rules)).toBe(true);
    expect(hasApprovalRouting(rules.filter((r) => r.id === 'notify-only'))).toBe(false);
  });

  it('a matching rule without a usable approval requires one, and says how to ask', () => {
    expect(routeDecision(allowed, agent(), pay({ amount: 5000, currency: 'USD' }), rules, [], now)).toEqual({
      kind: 'final',
      decision: { decision: 'approval_required', reasons: [{ code: 'approval_required', message: `${REQUIRED}; create one with POST /v1/approval-requests` }] },
    });
  });

  it('names the newest pending request', () => {
    const approvals = [approval('p-old', { status: 'pending', createdAt: ago(50_000), decidedAt: null }), approval('p-new', { status: 'pending', createdAt: ago(10_000), decidedAt: null })];
    expect(routeDecision(allowed, agent(), pay({ amount: 5000, currency: 'USD' }), rules, approvals, now)).toEqual({
      kind: 'final',
      decision: { decision: 'approval_required', reasons: [{ code: 'approval_required', message: `${REQUIRED}; request p-new is pending` }] },
      approvalRequestId: 'p-new',
    });
  });

  it('an approval inside its grantFor window allows, the earliest decided first', () => {
    const approvals = [
      approval('w-late', { grantUntil: new Date(now.getTime() + 60_000), decidedAt: ago(5_000) }),
      approval('w-early', { grantUntil: new Date(now.getTime() + 60_000), decidedAt: ago(20_000) }),
      approval('expired', { grantUntil: now }),
    ];
    const step = routeDecision(allowed, agent(), pay({ amount: 4000, currency: 'USD' }), rules, approvals, now);
    expect(step).toEqual({
      kind: 'final',
      decision: { ...allowed, reasons: [...allowed.reasons, { code: 'approved', message: 'approved by request w-early (rule big-payments)' }] },
      approvalRequestId: 'w-early',
    });
  });

  it('a window that has ended is not used', () => {
    const step = routeDecision(allowed, agent(), pay({ amount: 5000, currency: 'USD' }), rules, [approval('ended', { grantUntil: now })], now);
    expect(step).toMatchObject({ kind: 'final', decision: { decision: 'approval_required' } });
  });

  it('single-use approvals are offered to consume, earliest decided first, with the pending one', () => {
    const approvals = [approval('s2', { decidedAt: ago(1_000) }), approval('s1', { decidedAt: ago(9_000) }), approval('p', { status: 'pending', decidedAt: null })];
    expect(routeDecision(allowed, agent(), pay({ amount: 5000, currency: 'USD' }), rules, approvals, now)).toEqual({
      kind: 'consume',
      rule: { id: 'big-payments', why: ['action payments:transfer matches payments:*', 'amount 5000 over 1000'] },
      candidates: ['s1', 's2'],
      pendingId: 'p',
    });
    expect(routeDecision(allowed, agent(), pay({ amount: 5000, currency: 'USD' }), rules, approvals.slice(0, 2), now)).not.toHaveProperty('pendingId');
  });

  it('an approval only covers its own action and context (amount as a ceiling, other keys equal)', () => {
    const approvals = [approval('a1')];
    const ask = (action: string, context: Record<string, unknown>) => routeDecision(allowed, agent(), { agentId: 'bot', action, context }, rules, approvals, now).kind;
    expect(ask('payments:transfer', { amount: 5000, currency: 'USD' })).toBe('consume');
    expect(ask('payments:transfer', { amount: 4999, currency: 'USD' })).toBe('consume');
    expect(ask('payments:transfer', { amount: 5001, currency: 'USD' })).toBe('final');
    expect(ask('payments:transfer', { amount: 5000, currency: 'EUR' })).toBe('final');
    expect(ask('payments:refund', { amount: 5000, currency: 'USD' })).toBe('final');
  });

  it('routes on the agent’s trust: score, tier and evidence age from the view', () => {
    const crm: DecisionRequest = { agentId: 'bot', action: 'crm:write', context: {} };
    const step = (extra: Partial<Agent>) => routeDecision(allowed, agent(extra), crm, rules, [], now);
    expect(step({ trustScore: 400, newestEvidenceAt: ago(8 * 86_400_000) })).toMatchObject({ decision: { decision: 'approval_required' } });
    expect(step({ trustScore: 400, newestEvidenceAt: null })).toMatchObject({ decision: { decision: 'approval_required' } });
    expect(step({})).toMatchObject({ decision: { decision: 'approval_required' } });
    expect(step({ trustScore: 600, newestEvidenceAt: ago(8 * 86_400_000) })).toEqual({ kind: 'final', decision: allowed });
    expect(step({ trustScore: 400, newestEvidenceAt: ago(86_400_000) })).toEqual({ kind: 'final', decision: allowed });
  });
});

describe('answers', () => {
  it('approvedBy keeps the allow and adds the approval', () => {
    expect(approvedBy(allowed, { id: 'r', why: [] }, 'req-1')).toEqual({ ...allowed, reasons: [...allowed.reasons, { code: 'approved', message: 'approved by request req-1 (rule r)' }] });
  });

  it('approvalRequired names the rule and why', () => {
    expect(approvalRequired(pay({}), { id: 'r', why: ['a', 'b'] }, undefined).reasons[0]!.message).toBe('payments:transfer needs approval under routing rule r (a, b); create one with POST /v1/approval-requests');
  });
});
