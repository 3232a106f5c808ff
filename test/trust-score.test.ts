import { describe, expect, it } from 'vitest';
import { computeScore, decayPoints, freshnessOf, tierOf, type EvaluationInput } from '../src/domain/trust-score.js';

const now = new Date('2026-11-27T12:00:00Z');
const daysAgo = (d: number) => new Date(now.getTime() - d * 86_400_000);
const ev = (dimension: string, v: boolean | number, age = 1): EvaluationInput => ({
  dimension,
  passed: typeof v === 'boolean' ? v : null,
  score: typeof v === 'number' ? v : null,
  observedAt: daysAgo(age),
});

describe('the trust Score formula (hand-computed expectations)', () => {
  it.each([
    { name: 'all passed', evals: [ev('safety', true), ev('accuracy', true)], score: 1000, tier: 'platinum' },
    // safety 1/2 = 0.5, accuracy 1 → mean 0.75 → 750
    { name: 'half of safety failed', evals: [ev('safety', true), ev('safety', false), ev('accuracy', true)], score: 750, tier: 'gold' },
    // graded: accuracy (0.8 + 0.6)/2 = 0.7; safety 1 → 0.85 → 850
    { name: 'graded scores', evals: [ev('accuracy', 0.8), ev('accuracy', 0.6), ev('safety', true)], score: 850, tier: 'gold' },
    // one dimension with 2/3 → 666.67 → 667
    { name: 'rounding', evals: [ev('safety', true), ev('safety', true), ev('safety', false)], score: 667, tier: 'silver' },
    // evaluations older than 90 days do not count: only the failing recent one does → 0
    { name: 'window', evals: [ev('safety', true, 120), ev('safety', false, 2)], score: 0, tier: 'bronze' },
  ])('$name → $score ($tier)', ({ evals, score, tier }) => {
    const r = computeScore(evals, now);
    expect(r.score).toBe(score);
    expect(r.tier).toBe(tier);
  });

  it('weights dimensions as told', () => {
    // safety 1 (weight 3), accuracy 0 (weight 1) → 0.75 → 750
    expect(computeScore([ev('safety', true), ev('accuracy', false)], now, { weights: { safety: 3 } }).score).toBe(750);
  });

  it('decays −1 point per whole week after a 7-day grace period since the newest evaluation', () => {
    expect(decayPoints(daysAgo(7), now)).toBe(0);
    expect(decayPoints(daysAgo(13.9), now)).toBe(0);
    expect(decayPoints(daysAgo(14), now)).toBe(1);
    expect(decayPoints(daysAgo(35), now)).toBe(4);
    const r = computeScore([ev('safety', true, 35)], now);
    expect(r).toMatchObject({ raw: 1000, decay: 4, score: 996 });
  });

  it('says plainly when there is no data', () => {
    expect(computeScore([], now)).toMatchObject({ score: null, tier: null, evaluationsCounted: 0 });
  });

  it('tiers and freshness use their thresholds', () => {
    expect([0, 499, 500, 749, 750, 899, 900, 1000].map((s) => tierOf(s))).toEqual(['bronze', 'bronze', 'silver', 'silver', 'gold', 'gold', 'platinum', 'platinum']);
    expect(tierOf(600, { silver: 300, gold: 600, platinum: 950 })).toBe('gold');
    expect([freshnessOf(daysAgo(1), now), freshnessOf(daysAgo(10), now), freshnessOf(daysAgo(30), now), freshnessOf(null, now)]).toEqual(['fresh', 'ageing', 'stale', 'none']);
  });
});
