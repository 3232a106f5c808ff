import { describe, expect, it } from 'vitest';
import { firedConsequences, type TrustState, type TrustTrigger } from '../../src/domain/consequences.js';
import type { TrustTier } from '../../src/domain/trust-score.js';
import { parsePolicyText } from '../../src/policy/load-policy.js';

/** Which consequence rules a trust change fires: boundaries of every condition, and what the notice says. */

const rules = (yaml: string) =>
  parsePolicyText(`
roles:
  oncall: { members: [{ slack: U0A }, { slack: U0B }] }
permissions: { contain: [oncall], restore: [oncall] }
consequences:
${yaml}
`).consequences;

const violation = (severity: 'low' | 'medium' | 'high' | 'critical'): TrustTrigger => ({ kind: 'violation', eventId: 'ev1', pactId: 'pact-7', severity });
const score = (score: number, tier: TrustTier, previousScore: number | null, previousTier: TrustTier | null): TrustTrigger => ({
  kind: 'score',
  eventId: 'ev2',
  score,
  tier,
  previousScore,
  previousTier,
});
const evidence = (ageMs: number): TrustTrigger => ({ kind: 'evidence', eventId: 'ev3', ageMs });
const state = (over: Partial<TrustState> = {}): TrustState => ({ tier: 'gold', evidenceAgeMs: 0, ...over });

const DAY = 24 * 3600 * 1000;

describe('pactViolated', () => {
  const r = rules(`
  - id: high-or-worse
    when: { pactViolated: high }
    then: { contain: true }`);

  it('fires at the named severity and above, not below, and says which pact', () => {
    expect(firedConsequences(r, violation('high'), state())).toEqual([
      { ruleId: 'high-or-worse', action: { kind: 'contain' }, why: 'consequence high-or-worse: pact pact-7 violated (high)', key: 'consequence:high-or-worse:ev1' },
    ]);
    expect(firedConsequences(r, violation('critical'), state())).toHaveLength(1);
    expect(firedConsequences(r, violation('medium'), state())).toEqual([]);
  });

  it('does not fire on a score change', () => {
    expect(firedConsequences(r, score(100, 'bronze', 900, 'platinum'), state())).toEqual([]);
  });
});

describe('tierBelow', () => {
  const r = rules(`
  - id: below-gold
    when: { tierBelow: gold }
    then: { narrow: ["payments:*", "mail:send"] }`);

  it('fires when the tier falls below the level, with the scopes to narrow', () => {
    expect(firedConsequences(r, score(500, 'silver', 800, 'gold'), state())).toEqual([
      {
        ruleId: 'below-gold',
        action: { kind: 'narrow', scopes: ['payments:*', 'mail:send'] },
        why: 'consequence below-gold: tier fell to silver (below gold)',
        key: 'consequence:below-gold:ev2',
      },
    ]);
  });

  it('fires for a first score below the level', () => {
    expect(firedConsequences(r, score(500, 'silver', null, null), state())).toHaveLength(1);
  });

  it('does not fire at the level itself, nor again while the tier stays below', () => {
    expect(firedConsequences(r, score(800, 'gold', 900, 'platinum'), state())).toEqual([]);
    expect(firedConsequences(r, score(100, 'bronze', 500, 'silver'), state())).toEqual([]);
  });

  it('as a second condition on another event, holds only while the tier is below the level', () => {
    const both = rules(`
  - id: violation-while-low
    when: { pactViolated: low, tierBelow: gold }
    then: { contain: true }`);
    expect(firedConsequences(both, violation('low'), state({ tier: 'silver' }))).toHaveLength(1);
    expect(firedConsequences(both, violation('low'), state({ tier: 'gold' }))).toEqual([]);
    expect(firedConsequences(both, violation('low'), state({ tier: null }))).toEqual([]);
  });
});

describe('scoreDropOver', () => {
  const r = rules(`
  - id: big-drop
    when: { scoreDropOver: 100 }
    then: { contain: true }`);

  it('fires on a drop of more than the points, not exactly the points', () => {
    expect(firedConsequences(r, score(699, 'silver', 800, 'gold'), state())).toEqual([
      { ruleId: 'big-drop', action: { kind: 'contain' }, why: 'consequence big-drop: score dropped 101 points to 699', key: 'consequence:big-drop:ev2' },
    ]);
    expect(firedConsequences(r, score(700, 'silver', 800, 'gold'), state())).toEqual([]);
  });

  it('does not fire on a first score', () => {
    expect(firedConsequences(r, score(0, 'bronze', null, null), state())).toEqual([]);
  });
});

describe('evidenceOlderThan', () => {
  const r = rules(`
  - id: stale
    when: { evidenceOlderThan: 30d }
    then: { contain: true }`);

  it('fires on stale-evidence events older than the limit, not at the limit', () => {
    expect(firedConsequences(r, evidence(30 * DAY + 1), state())).toEqual([
      { ruleId: 'stale', action: { kind: 'contain' }, why: 'consequence stale: evidence older than 30d', key: 'consequence:stale:ev3' },
    ]);
    expect(firedConsequences(r, evidence(30 * DAY), state())).toEqual([]);
  });

  it('is not itself an event: a violation does not fire it', () => {
    expect(firedConsequences(r, violation('critical'), state({ evidenceAgeMs: 90 * DAY }))).toEqual([]);
  });

  it('as a second condition, holds when evidence is old or missing', () => {
    const both = rules(`
  - id: violation-and-stale
    when: { pactViolated: low, evidenceOlderThan: 30d }
    then: { contain: true }`);
    expect(firedConsequences(both, violation('low'), state({ evidenceAgeMs: 31 * DAY }))[0]?.why).toBe(
      'consequence violation-and-stale: pact pact-7 violated (low), evidence older than 30d',
    );
    expect(firedConsequences(both, violation('low'), state({ evidenceAgeMs: null }))).toHaveLength(1);
    expect(firedConsequences(both, violation('low'), state({ evidenceAgeMs: DAY }))).toEqual([]);
  });
});

describe('several conditions', () => {
  it('all must hold', () => {
    const r = rules(`
  - id: drop-and-low
    when: { scoreDropOver: 100, tierBelow: gold }
    then: { contain: true }`);
    expect(firedConsequences(r, score(500, 'silver', 800, 'gold'), state())[0]?.why).toBe('consequence drop-and-low: tier fell to silver (below gold), score dropped 300 points to 500');
    expect(firedConsequences(r, score(750, 'silver', 800, 'gold'), state())).toEqual([]);
    expect(firedConsequences(r, score(850, 'gold', 1000, 'platinum'), state())).toEqual([]);
  });

  it('every rule that fires is returned, in policy order', () => {
    const r = rules(`
  - id: a
    when: { pactViolated: low }
    then: { narrow: ["crm:*"] }
  - id: b
    when: { pactViolated: critical }
    then: { contain: true }
  - id: c
    when: { pactViolated: medium }
    then: { contain: true }`);
    expect(firedConsequences(r, violation('high'), state()).map((f) => f.ruleId)).toEqual(['a', 'c']);
  });
});
