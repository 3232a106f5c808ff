import { describe, expect, it } from 'vitest';
import {
  computeRoute,
  DEFAULT_EXPIRE_AFTER_MS,
  escalate,
  filledSlots,
  isApproved,
  isPerson,
  isReachable,
  matchReasons,
  policyPeople,
  ruleMatches,
  totalSlots,
  type RouteInput,
} from '../../src/domain/approval-route.js';
import { parsePolicyText } from '../../src/policy/load-policy.js';

/** Approval routing edges: the boundary of every match condition, who counts as whom, and what the card says. */

const input = (over: Partial<RouteInput> = {}): RouteInput => ({ action: 'payments:transfer', context: { amount: 500 }, riskTier: 'low', evidenceAgeMs: 0, ...over });
const none = () => false;
const DAY = 24 * 3600_000;

const match = (yaml: string) =>
  parsePolicyText(`
roles:
  a: { members: [{ slack: U0A }] }
routing:
  - match: ${yaml}
    approvers: [a]
`).routing[0]!.match;

describe('ruleMatches', () => {
  it('action: a glob over the requested action', () => {
    expect(ruleMatches(match('{ action: "payments:*" }'), input())).toBe(true);
    expect(ruleMatches(match('{ action: "payments:*" }'), input({ action: 'mail:send' }))).toBe(false);
  });

  it('amountOver: strictly over; no amount counts as over', () => {
    const m = match('{ context: { amountOver: 1000 } }');
    expect(ruleMatches(m, input({ context: { amount: 1000 } }))).toBe(false);
    expect(ruleMatches(m, input({ context: { amount: 1000.01 } }))).toBe(true);
    expect(ruleMatches(m, input({ context: {} }))).toBe(true);
    expect(ruleMatches(m, input({ context: { amount: '5' } }))).toBe(true);
  });

  it('riskTier: one of the listed tiers', () => {
    const m = match('{ riskTier: [high, critical] }');
    expect(ruleMatches(m, input({ riskTier: 'critical' }))).toBe(true);
    expect(ruleMatches(m, input({ riskTier: 'medium' }))).toBe(false);
  });

  it('evidenceOlderThan: strictly older; no evidence counts as old', () => {
    const m = match('{ evidenceOlderThan: 30d }');
    expect(ruleMatches(m, input({ evidenceAgeMs: 30 * DAY }))).toBe(false);
    expect(ruleMatches(m, input({ evidenceAgeMs: 30 * DAY + 1 }))).toBe(true);
    expect(ruleMatches(m, input({ evidenceAgeMs: null }))).toBe(true);
  });

  it('tierBelow: strictly below; no tier counts as below', () => {
    const m = match('{ tierBelow: gold }');
    expect(ruleMatches(m, input({ tier: 'gold' }))).toBe(false);
    expect(ruleMatches(m, input({ tier: 'platinum' }))).toBe(false);
    expect(ruleMatches(m, input({ tier: 'silver' }))).toBe(true);
    expect(ruleMatches(m, input({ tier: null }))).toBe(true);
  });

  it('scoreBelow: strictly below; no score counts as below', () => {
    const m = match('{ scoreBelow: 600 }');
    expect(ruleMatches(m, input({ score: 600 }))).toBe(false);
    expect(ruleMatches(m, input({ score: 599 }))).toBe(true);
    expect(ruleMatches(m, input({ score: null }))).toBe(true);
  });

  it('every condition must hold', () => {
    const m = match('{ action: "payments:*", riskTier: [high] }');
    expect(ruleMatches(m, input({ riskTier: 'high' }))).toBe(true);
    expect(ruleMatches(m, input({ riskTier: 'low' }))).toBe(false);
    expect(ruleMatches(m, input({ action: 'crm:read', riskTier: 'high' }))).toBe(false);
  });
});

describe('matchReasons (why the card says a rule matched)', () => {
  it('says each condition in words', () => {
    const m = match('{ action: "payments:*", context: { amountOver: 100 }, riskTier: [low], evidenceOlderThan: 7d, tierBelow: gold, scoreBelow: 600 }');
    expect(matchReasons(m, input({ score: 450, tier: 'silver' }))).toEqual([
      'action payments:transfer matches payments:*',
      'amount 500 over 100',
      'risk tier low',
      'evidence older than 7d',
      'tier silver below gold',
      'score 450 below 600',
    ]);
  });

  it('says when a fact is missing', () => {
    const m = match('{ context: { amountOver: 100 }, evidenceOlderThan: 7d, tierBelow: gold, scoreBelow: 600 }');
    expect(matchReasons(m, input({ context: {}, evidenceAgeMs: null, score: null, tier: null }))).toEqual([
      'no amount given (rule is for amounts over 100)',
      'no evaluation evidence',
      'no trust tier yet',
      'no trust score yet',
    ]);
  });

  it('an empty match has no reasons', () => {
    expect(matchReasons(match('{}'), input())).toEqual([]);
  });
});

describe('people', () => {
  const policy = parsePolicyText(`
roles:
  finance: { members: [{ slack: U0FIN }, { email: Pat@Example.com }] }
  audit: { members: [{ teams: ABCDEF00-0000-0000-0000-000000000001, email: pat@example.com }, { slack: U0FIN, teams: 00000000-0000-0000-0000-000000000002 }] }
`);

  it('members sharing any identity are one person, with every identity and role', () => {
    const people = policyPeople(policy);
    expect(people).toEqual([
      { key: 'slack:U0FIN', emails: [], slack: ['U0FIN'], teams: ['00000000-0000-0000-0000-000000000002'], roles: ['audit', 'finance'] },
      { key: 'email:pat@example.com', emails: ['pat@example.com'], slack: [], teams: ['abcdef00-0000-0000-0000-000000000001'], roles: ['audit', 'finance'] },
    ]);
  });

  it('a member linking two people so far merges them', () => {
    const merged = policyPeople(
      parsePolicyText(`
roles:
  a: { members: [{ slack: U0X }, { email: x@example.com }] }
  b: { members: [{ slack: U0X, email: x@example.com }] }
`),
    );
    expect(merged).toEqual([{ key: 'email:x@example.com', emails: ['x@example.com'], slack: ['U0X'], teams: [], roles: ['a', 'b'] }]);
  });

  it('isPerson recognises every identity, with or without a platform prefix', () => {
    const [fin, pat] = policyPeople(policy) as [ReturnType<typeof policyPeople>[number], ReturnType<typeof policyPeople>[number]];
    expect(isPerson(fin, { text: 'slack:U0FIN' })).toBe(true);
    expect(isPerson(fin, { text: ' U0FIN ' })).toBe(true);
    expect(isPerson(fin, { text: 'slack:u0fin' })).toBe(false);
    expect(isPerson(fin, { text: 'teams:00000000-0000-0000-0000-000000000002' })).toBe(true);
    expect(isPerson(pat, { text: 'teams:ABCDEF00-0000-0000-0000-000000000001' })).toBe(true);
    expect(isPerson(pat, { text: 'ABCDEF00-0000-0000-0000-000000000001' })).toBe(true);
    expect(isPerson(pat, { text: 'slack:ABCDEF00-0000-0000-0000-000000000001' })).toBe(false);
    expect(isPerson(fin, { text: 'teams:U0FIN' })).toBe(false);
    expect(isPerson(pat, { email: 'PAT@example.com' })).toBe(true);
    expect(isPerson(fin, { slack: 'U0FIN' })).toBe(true);
    expect(isPerson(pat, { teams: 'abcdef00-0000-0000-0000-000000000001' })).toBe(true);
    expect(isPerson(pat, { slack: 'U0FIN', email: 'nobody@example.com' })).toBe(false);
    expect(isPerson(pat, { text: '  ' })).toBe(false);
    expect(isPerson(fin, {})).toBe(false);
  });
});

describe('computeRoute', () => {
  const policy = parsePolicyText(`
roles:
  finance: { members: [{ slack: U0FIN1 }, { slack: U0FIN2 }] }
  ciso: { members: [{ email: ciso@example.com }] }
  oncall: { members: [{ slack: U0ON }] }
  bystander: { members: [{ slack: U0BY }] }
channels:
  money: { slack: C0MONEY }
routing:
  - id: extra
    match: { action: "payments:*" }
    addApprovers: [ciso]
    quorum: 1
  - id: money
    match: { action: "payments:*" }
    approvers: [finance]
    escalateAfter: 10m
    escalateTo: [oncall]
    channel: money
  - id: also-money
    match: { action: "payments:*" }
    approvers: [ciso]
  - id: crm
    match: { action: "crm:*" }
    approvers: [finance]
    quorum: 2
`);

  it('the first rule with approvers sets the route; rules that add approvers add a requirement', () => {
    const route = computeRoute(policy, input({ score: 700, tier: 'gold' }), none)!;
    expect(route).toMatchObject({
      ruleId: 'money',
      matched: ['extra', 'money', 'also-money'],
      why: { extra: ['action payments:transfer matches payments:*'], money: ['action payments:transfer matches payments:*'] },
      trust: { score: 700, tier: 'gold', evidenceAgeMs: 0 },
      requirements: [
        { ruleId: 'money', roles: ['finance'], people: ['slack:U0FIN1', 'slack:U0FIN2'], count: 1 },
        { ruleId: 'extra', roles: ['ciso'], people: ['email:ciso@example.com'], count: 1 },
      ],
      remindAfterMs: null,
      escalateAfterMs: 600_000,
      escalateTo: ['oncall'],
      expireAfterMs: DEFAULT_EXPIRE_AFTER_MS,
      grantForMs: null,
      channel: 'money',
    });
    // The people on the card: approvers and escalation, not bystanders.
    expect(Object.keys(route.people).sort()).toEqual(['email:ciso@example.com', 'slack:U0FIN1', 'slack:U0FIN2', 'slack:U0ON']);
  });

  it('a requirement added by a rule that also has approvers needs one person', () => {
    const p = parsePolicyText(`
roles:
  a: { members: [{ slack: U0A1 }, { slack: U0A2 }] }
  b: { members: [{ slack: U0B1 }, { slack: U0B2 }] }
routing:
  - id: base
    approvers: [a]
  - id: both
    approvers: [a]
    addApprovers: [b]
    quorum: 2
  - id: add-only
    addApprovers: [b]
    quorum: 2
`);
    const route = computeRoute(p, input(), none)!;
    expect(route.requirements.map((r) => [r.ruleId, r.count])).toEqual([
      ['base', 1],
      ['both', 1],
      ['add-only', 2],
    ]);
    expect(totalSlots(route)).toBe(4);
  });

  it('no trust known: trust is all null; no channel: null', () => {
    const route = computeRoute(policy, input({ action: 'crm:write', evidenceAgeMs: null }), none)!;
    expect(route.trust).toEqual({ score: null, tier: null, evidenceAgeMs: null });
    expect(route.channel).toBeNull();
    expect(route.requirements).toEqual([{ ruleId: 'crm', roles: ['finance'], people: ['slack:U0FIN1', 'slack:U0FIN2'], count: 2 }]);
  });

  it('no rule with approvers matches: no route', () => {
    expect(computeRoute(policy, input({ action: 'mail:send' }), none)).toBeNull();
  });

  it('excluded people are neither on the requirement nor on the card', () => {
    const route = computeRoute(policy, input(), (p) => p.slack.includes('U0FIN1'))!;
    expect(route.requirements[0]!.people).toEqual(['slack:U0FIN2']);
    expect(Object.keys(route.people)).not.toContain('slack:U0FIN1');
  });
});

describe('slots', () => {
  const policy = parsePolicyText(`
roles:
  a: { members: [{ slack: U0A }, { slack: U0B }] }
  b: { members: [{ slack: U0B }] }
routing:
  - id: main
    approvers: [a]
  - id: extra
    addApprovers: [b]
`);

  it('finds the assignment where each person fills a slot they can (augmenting path)', () => {
    const route = computeRoute(policy, input(), none)!;
    // U0B approves first and takes the main slot; U0A then needs it, so U0B moves to the extra slot.
    expect(filledSlots(route, ['slack:U0B', 'slack:U0A'])).toBe(2);
    expect(isApproved(route, ['slack:U0B', 'slack:U0A'])).toBe(true);
    expect(filledSlots(route, ['slack:U0A', 'slack:U0A'])).toBe(1);
    expect(filledSlots(route, ['slack:U0NOBODY'])).toBe(0);
  });

  it('escalation adds people to the main requirement only, once each', () => {
    const route = computeRoute(policy, input(), none)!;
    const escalated = escalate(route, ['slack:U0A', 'slack:U0C']);
    expect(escalated.requirements[0]!.people).toEqual(['slack:U0A', 'slack:U0B', 'slack:U0C']);
    expect(escalated.requirements[1]).toEqual(route.requirements[1]);
    expect(escalate({ ...route, requirements: [] }, ['slack:U0C']).requirements).toEqual([]);
  });

  it('a route nobody left can fill is not reachable', () => {
    const route = computeRoute(policy, input(), (p) => p.slack.includes('U0B'))!;
    expect(isReachable(route)).toBe(false);
    expect(isReachable(computeRoute(policy, input(), none)!)).toBe(true);
  });
});
