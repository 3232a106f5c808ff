import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../src/chat/command-parser.js';
import { planAction } from '../../src/domain/actions.js';
import { grantStatus, type ActiveAction, type Agent, type Grant } from '../../src/domain/agent.js';
import { computeRoute, filledSlots, isApproved, policyPeople } from '../../src/domain/approval-route.js';
import { firedConsequences } from '../../src/domain/consequences.js';
import { decide } from '../../src/domain/decide.js';
import { durationSchema, formatDuration } from '../../src/domain/duration.js';
import { globMatches, scopesOverlap } from '../../src/domain/scope.js';
import { computeScore } from '../../src/domain/trust-score.js';
import { parsePolicyText } from '../../src/policy/load-policy.js';

/**
 * Behaviour the first mutation run showed no test pinned down (docs/testing.md): each case here failed
 * against at least one surviving mutant.
 */

const now = new Date('2026-11-27T12:00:00Z');
const grant = (id: string, scope: string): Grant => ({ id, scope, constraints: {}, keepInContainment: false, expiresAt: null, grantedBy: 'api:test', grantedAt: now });
const agent = (grants: Grant[], activeActions: ActiveAction[] = []): Agent => ({
  id: 'bot',
  name: 'Bot',
  owner: 'o@example.com',
  riskTier: 'low',
  status: activeActions.length ? 'narrowed' : 'active',
  version: 1n,
  grants,
  activeActions,
  updatedAt: now,
});

describe('a `*` in the value is a character to match, not a wildcard', () => {
  it('a narrow on *:write overlaps a grant for *:admin:write', () => {
    expect(globMatches('*:write', '*:admin:write')).toBe(true);
    expect(scopesOverlap('*:write', '*:admin:write')).toBe(true);
    const plan = planAction(agent([grant('g1', '*:admin:write')]), { kind: 'narrow', scopes: ['*:write'], reason: 'r', actor: 'x' }, now);
    expect(plan.grantsTakenAway).toEqual([{ grantId: 'g1', scope: '*:admin:write' }]);
  });
});

describe('decision reasons', () => {
  it('an allowed action on an agent narrowed elsewhere gives only the grant as reason', () => {
    const narrow: ActiveAction = { id: 'n1', kind: 'narrow', scopes: ['payments:*'], reason: 'r', actor: 'x', createdAt: now, expiresAt: null, touched: [] };
    expect(decide(agent([grant('g1', 'mail:send')], [narrow]), { agentId: 'bot', action: 'mail:send', context: {} }, now)).toEqual({
      decision: 'allow',
      reasons: [{ code: 'granted', message: 'allowed by grant mail:send' }],
      grantId: 'g1',
    });
  });

  it('a stale view says why it fails closed', () => {
    expect(decide(agent([]), { agentId: 'bot', action: 'a', context: {} }, now, false).reasons).toEqual([
      { code: 'view_stale', message: 'this replica cannot confirm its permission view is current; failing closed' },
    ]);
  });
});

describe('trust Score details', () => {
  it('an evaluation observed exactly now is the newest evidence', () => {
    expect(computeScore([{ dimension: 'a', passed: true, score: null, observedAt: now }], now).newestEvidence).toEqual(now);
  });

  it('dimensions are listed in name order', () => {
    const at = new Date(now.getTime() - 1000);
    const r = computeScore(['zeta', 'alpha', 'mid'].map((dimension) => ({ dimension, passed: true, score: null, observedAt: at })), now);
    expect(Object.keys(r.dimensions)).toEqual(['alpha', 'mid', 'zeta']);
  });
});

describe('consequences with two conditions', () => {
  it('a tier drop does not fire a rule that also needs a pact violation', () => {
    const rules = parsePolicyText(`
roles:
  oncall: { members: [{ slack: U0A }, { slack: U0B }] }
permissions: { contain: [oncall], restore: [oncall] }
consequences:
  - id: both
    when: { pactViolated: low, tierBelow: gold }
    then: { contain: true }
`).consequences;
    expect(firedConsequences(rules, { kind: 'score', eventId: 'e', score: 500, tier: 'silver', previousScore: 800, previousTier: 'gold' }, { tier: 'silver', evidenceAgeMs: 0 })).toEqual([]);
  });
});

describe('approval routing people', () => {
  it('a request expires after 24 hours unless the rule says otherwise', () => {
    const policy = parsePolicyText(`
roles:
  a: { members: [{ slack: U0A }] }
routing:
  - approvers: [a]
`);
    expect(computeRoute(policy, { action: 'x', context: {}, riskTier: 'low', evidenceAgeMs: 0 }, () => false)?.expireAfterMs).toBe(86_400_000);
  });

  it('identities are merged through a Teams id, sorted and listed once', () => {
    const people = policyPeople(
      parsePolicyText(`
roles:
  a: { members: [{ teams: 00000000-0000-0000-0000-0000000000AA, slack: U0Z }, { email: z@example.com, slack: U0Y }] }
  b: { members: [{ teams: 00000000-0000-0000-0000-0000000000aa, email: b@example.com }, { email: a@example.com, slack: U0Y }, { slack: U0Z }] }
`),
    );
    expect(people).toEqual([
      {
        key: 'email:b@example.com',
        emails: ['b@example.com'],
        slack: ['U0Z'],
        teams: ['00000000-0000-0000-0000-0000000000aa'],
        roles: ['a', 'b'],
      },
      { key: 'email:a@example.com', emails: ['a@example.com', 'z@example.com'], slack: ['U0Y'], teams: [], roles: ['a', 'b'] },
    ]);
  });
});

describe('command text', () => {
  it('a bad clause after a good one is quoted from where it starts', () => {
    const r = parseCommand('packet bot workflow review for');
    expect(r).toMatchObject({ ok: false, error: 'expected "for <company>" or "workflow <name>", got "for"' });
  });

  it('empty entries in a scope list are skipped', () => {
    expect(parseCommand('narrow bot payments:*,,crm:write')).toMatchObject({ ok: true, command: { scopes: ['payments:*', 'crm:write'] } });
  });
});

describe('second round', () => {
  it('of two equally strong actions holding a grant, the first is named', () => {
    const g = grant('g1', 'crm:write');
    const n = (id: string): ActiveAction => ({ id, kind: 'narrow', scopes: ['crm:*'], reason: 'r', actor: 'x', createdAt: now, expiresAt: null, touched: [{ grantId: 'g1', scope: 'crm:write' }] });
    expect(grantStatus(agent([g], [n('n1'), n('n2')]), g, now).heldBy?.id).toBe('n1');
  });

  it('one person never fills two slots, even when an augmenting path moves them', () => {
    const policy = parsePolicyText(`
roles:
  main: { members: [{ slack: U0A }, { slack: U0B }] }
  onlyb: { members: [{ slack: U0B }] }
  onlya: { members: [{ slack: U0A }] }
routing:
  - id: main
    approvers: [main]
  - id: b
    addApprovers: [onlyb]
  - id: a
    addApprovers: [onlya]
`);
    const route = computeRoute(policy, { action: 'x', context: {}, riskTier: 'low', evidenceAgeMs: 0 }, () => false)!;
    // Three slots, two people: B takes the main slot, then A's path moves B to B's own slot.
    expect(filledSlots(route, ['slack:U0B', 'slack:U0A'])).toBe(2);
    expect(isApproved(route, ['slack:U0B', 'slack:U0A'])).toBe(false);
  });

  it('a person’s Slack and Teams ids are sorted; a Teams-only person is keyed by Teams id', () => {
    const people = policyPeople(
      parsePolicyText(`
roles:
  a: { members: [{ email: p@example.com, slack: U0B, teams: 00000000-0000-0000-0000-00000000000b }, { email: p@example.com, slack: U0A, teams: 00000000-0000-0000-0000-00000000000a }] }
  b: { members: [{ teams: 00000000-0000-0000-0000-0000000000cc }] }
`),
    );
    expect(people[0]).toMatchObject({ slack: ['U0A', 'U0B'], teams: ['00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b'] });
    expect(people[1]!.key).toBe('teams:00000000-0000-0000-0000-0000000000cc');
  });

  it('durations: the schema quotes the trimmed text; a negative length is a RangeError that says what it got', () => {
    expect(durationSchema.parse(' 2h ')).toEqual({ text: '2h', ms: 7_200_000 });
    expect(() => formatDuration(-1)).toThrow(new RangeError('formatDuration: expected a non-negative finite number, got -1'));
  });
});
