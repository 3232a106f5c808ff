import { describe, expect, it } from 'vitest';
import { parsePolicyText } from '../../src/policy/load-policy.js';
import { consequencesFor, grantsInScope, routingInScope, tighteningRules, type AgentState } from '../../src/packets/rules.js';

const policy = parsePolicyText(`
roles:
  ciso: { members: [{ slack: U0CISO }] }
  oncall: { members: [{ slack: U0ONCALL }] }
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [ciso]
  - id: stale
    match: { evidenceOlderThan: 30d }
    addApprovers: [ciso]
  - id: low-tier-mail
    match: { action: "mail:*", tierBelow: gold }
    approvers: [oncall]
  - id: critical-only
    match: { riskTier: [critical], scoreBelow: 600 }
    approvers: [ciso]
consequences:
  - id: contain-on-critical
    when: { pactViolated: critical }
    then: { contain: true }
  - id: narrow-crm
    when: { tierBelow: silver }
    then: { narrow: ["crm:*"] }
  - id: narrow-hr
    when: { evidenceOlderThan: 60d }
    then: { narrow: ["hr:*"] }
workflows:
  underwriting: { actions: ["payments:*", "crm:read"] }
`);

const DAY = 86_400_000;
function agent(over: Partial<AgentState> = {}): AgentState {
  return {
    riskTier: 'high',
    grants: [
      { scope: 'crm:write', state: 'active', constraints: {}, keepInContainment: false },
      { scope: 'mail:send', state: 'active', constraints: {}, keepInContainment: true },
      { scope: 'payments:refund', state: 'active', constraints: {}, keepInContainment: false },
      { scope: 'payments:transfer', state: 'suspended', constraints: {}, keepInContainment: false },
    ],
    pacts: [{ severity: 'critical', lastResult: 'passed' }],
    tier: 'gold',
    score: 800,
    evidenceAgeMs: 2 * DAY,
    ...over,
  };
}

describe('what changes when the proof weakens, for one agent', () => {
  it('says what each consequence rule would do to its grants, and whether its condition holds now', () => {
    expect(consequencesFor(policy.consequences, agent(), null)).toEqual([
      { ruleId: 'contain-on-critical', when: 'a critical pact is violated', effect: 'contain: suspends 2 of 4 grants (crm:write, payments:refund), keeps mail:send', applies: true, conditionHoldsNow: false },
      { ruleId: 'narrow-crm', when: 'the tier falls below silver', effect: 'narrow crm:*: suspends crm:write', applies: true, conditionHoldsNow: false },
      { ruleId: 'narrow-hr', when: 'the newest evidence is older than 60d', effect: 'narrow hr:*: touches none of its grants', applies: false, conditionHoldsNow: false },
    ]);
    const weak = consequencesFor(policy.consequences, agent({ pacts: [{ severity: 'critical', lastResult: 'failed' }], tier: 'bronze', evidenceAgeMs: 90 * DAY }), null);
    expect(weak.map((r) => r.conditionHoldsNow)).toEqual([true, true, true]);
  });

  it('a pactViolated rule does not apply to an agent without a pact that severe', () => {
    const [contain] = consequencesFor(policy.consequences, agent({ pacts: [{ severity: 'high', lastResult: 'failed' }] }), null);
    expect(contain).toMatchObject({ applies: false, conditionHoldsNow: false });
  });

  it('lists the routing rules that tighten on weak proof, for this agent, and whether they are in force', () => {
    expect(tighteningRules(policy.routing, agent(), null)).toEqual([
      { ruleId: 'stale', action: null, condition: 'evidence older than 30d', effect: 'adds ciso as approvers', inForceNow: false },
      { ruleId: 'low-tier-mail', action: 'mail:*', condition: 'tier below gold', effect: 'routes to oncall', inForceNow: false },
    ]);
    const weak = tighteningRules(policy.routing, agent({ tier: 'silver', evidenceAgeMs: null }), null);
    expect(weak.map((r) => [r.ruleId, r.inForceNow])).toEqual([
      ['stale', true],
      ['low-tier-mail', true],
    ]);
    // A rule for another risk tier is not this agent's.
    expect(tighteningRules(policy.routing, agent({ riskTier: 'critical', score: 500 }), null).map((r) => r.ruleId)).toContain('critical-only');
  });

  it('a workflow keeps the grants and rules its actions touch', () => {
    const actions = policy.workflows.underwriting!.actions;
    expect(grantsInScope(agent().grants, actions).map((g) => g.scope)).toEqual(['payments:refund', 'payments:transfer']);
    expect(routingInScope(policy.routing, actions).map((r) => r.id)).toEqual(['big-payments', 'stale', 'critical-only']);
    const rules = consequencesFor(policy.consequences, agent(), actions);
    expect(rules.map((r) => [r.ruleId, r.applies])).toEqual([
      ['contain-on-critical', true],
      ['narrow-crm', false],
    ]);
    expect(rules[0]!.effect).toBe('contain: suspends 1 of 2 grants in this workflow (payments:refund)');
    expect(tighteningRules(policy.routing, agent(), actions).map((r) => r.ruleId)).toEqual(['stale']);
  });
});
