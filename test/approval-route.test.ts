import { describe, expect, it } from 'vitest';
import { computeRoute, escalate, isApproved, isPerson, isReachable, policyPeople, type RouteInput } from '../src/domain/approval-route.js';
import { parsePolicyText } from '../src/policy/load-policy.js';

const policy = parsePolicyText(`
roles:
  ciso: { members: [{ email: ciso@example.com, slack: U0CISO }] }
  risk-owner: { members: [{ email: risk@example.com }, { slack: U0RISK2 }] }
  security-oncall: { members: [{ slack: U0ONCALL1 }, { slack: U0ONCALL2 }, { email: CISO@example.com }] }
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [risk-owner, ciso]
    quorum: 2
    remindAfter: 10m
    escalateAfter: 30m
    escalateTo: [security-oncall]
    expireAfter: 4h
    grantFor: 1h
  - id: risky-agents
    match: { riskTier: [high, critical] }
    approvers: [security-oncall]
  - id: stale-evidence
    match: { evidenceOlderThan: 30d }
    addApprovers: [ciso]
`);

const input = (over: Partial<RouteInput> = {}): RouteInput => ({ action: 'payments:transfer', context: { amount: 50_000 }, riskTier: 'low', evidenceAgeMs: 0, ...over });
const none = () => false;

describe('approval routing', () => {
  it('merges identities into people: the CISO listed twice (email case differs) is one person', () => {
    const people = policyPeople(policy);
    const ciso = people.find((p) => p.emails.includes('ciso@example.com'))!;
    expect(ciso.roles).toEqual(['ciso', 'security-oncall']);
    expect(ciso.slack).toEqual(['U0CISO']);
    expect(people).toHaveLength(5);
    expect(isPerson(ciso, { text: 'slack:U0CISO' })).toBe(true);
    expect(isPerson(ciso, { text: 'CISO@example.com' })).toBe(true);
  });

  it('the first matching rule with approvers sets the route, with its timers', () => {
    const route = computeRoute(policy, input(), none)!;
    expect(route.ruleId).toBe('big-payments');
    expect(route.matched).toEqual(['big-payments']);
    expect(route.requirements).toHaveLength(1);
    expect(route.requirements[0]!.count).toBe(2);
    expect(route).toMatchObject({ remindAfterMs: 600_000, escalateAfterMs: 1_800_000, expireAfterMs: 14_400_000, grantForMs: 3_600_000 });
  });

  it('a small payment from a low-risk agent matches no rule: no route', () => {
    expect(computeRoute(policy, input({ context: { amount: 100 } }), none)).toBeNull();
    // No amount given: the amount rule applies (we cannot tell it is small).
    expect(computeRoute(policy, input({ context: {} }), none)?.ruleId).toBe('big-payments');
  });

  it('stale or missing evidence adds a requirement that only the CISO can fill', () => {
    const route = computeRoute(policy, input({ action: 'mail:send', riskTier: 'high', evidenceAgeMs: null }), none)!;
    expect(route.ruleId).toBe('risky-agents');
    expect(route.requirements.map((r) => [r.ruleId, r.count])).toEqual([
      ['risky-agents', 1],
      ['stale-evidence', 1],
    ]);
    // The CISO is on call too, but one person fills one slot: two on-call people are not enough...
    expect(isApproved(route, ['slack:U0ONCALL1', 'slack:U0ONCALL2'])).toBe(false);
    // ...the CISO plus one on-call person is.
    expect(isApproved(route, ['email:ciso@example.com', 'slack:U0ONCALL1'])).toBe(true);
    // The CISO alone cannot fill both.
    expect(isApproved(route, ['email:ciso@example.com'])).toBe(false);
  });

  it('quorum counts distinct people; excluded people (owner, requester) never count', () => {
    const route = computeRoute(policy, input(), none)!;
    expect(isApproved(route, ['email:risk@example.com', 'email:risk@example.com'])).toBe(false);
    expect(isApproved(route, ['email:risk@example.com', 'email:ciso@example.com'])).toBe(true);
    const withoutCiso = computeRoute(policy, input(), (p) => p.emails.includes('ciso@example.com'))!;
    expect(isApproved(withoutCiso, ['email:risk@example.com', 'email:ciso@example.com'])).toBe(false);
    expect(isReachable(withoutCiso)).toBe(true); // the two risk owners can still do it
    const onlyCisoLeft = computeRoute(policy, input(), (p) => p.roles.includes('risk-owner'))!;
    expect(isReachable(onlyCisoLeft)).toBe(false);
  });

  it('escalation lets the escalation roles fill the main requirement', () => {
    const route = computeRoute(policy, input(), none)!;
    expect(isApproved(route, ['slack:U0ONCALL1', 'slack:U0ONCALL2'])).toBe(false);
    const escalated = escalate(route, ['slack:U0ONCALL1', 'slack:U0ONCALL2']);
    expect(isApproved(escalated, ['slack:U0ONCALL1', 'slack:U0ONCALL2'])).toBe(true);
  });
});
