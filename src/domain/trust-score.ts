/**
 * The trust Score: 0–1000, with tiers. Deterministic and documented (docs/trust.md), so a score
 * can be recomputed from its stored inputs and explained to a CISO.
 *
 * 1. Only evaluations observed in the last `windowDays` (90) count.
 * 2. Each evaluation is worth 1 (passed), 0 (failed) or its `score` (0..1).
 * 3. Per dimension, the mean of its evaluations; the Score is 1000 × the weighted mean of the
 *    dimensions (weight 1 each unless the policy gives weights), rounded to a whole number.
 * 4. Decay for stale evidence (Armalo's published rule): −1 point per whole week after a 7-day grace
 *    period since the newest evaluation. Never below 0.
 */

export const TRUST_TIERS = ['bronze', 'silver', 'gold', 'platinum'] as const;
export type TrustTier = (typeof TRUST_TIERS)[number];

/** Lowest score of each tier above bronze. */
export interface TierThresholds {
  silver: number;
  gold: number;
  platinum: number;
}

export const DEFAULT_TIER_THRESHOLDS: TierThresholds = { silver: 500, gold: 750, platinum: 900 };

export interface EvaluationInput {
  dimension: string;
  passed: boolean | null;
  /** 0..1 when the evaluation grades rather than passes/fails. */
  score: number | null;
  observedAt: Date;
}

export interface ScoreResult {
  score: number | null;
  tier: TrustTier | null;
  /** Score before decay. */
  raw: number | null;
  decay: number;
  dimensions: Record<string, { mean: number; count: number; weight: number }>;
  newestEvidence: Date | null;
  evaluationsCounted: number;
}

const DAY = 86_400_000;

export function tierOf(score: number, thresholds: TierThresholds = DEFAULT_TIER_THRESHOLDS): TrustTier {
  if (score >= thresholds.platinum) return 'platinum';
  if (score >= thresholds.gold) return 'gold';
  if (score >= thresholds.silver) return 'silver';
  return 'bronze';
}

/** Points lost to stale evidence: −1 per whole week after a 7-day grace period. */
export function decayPoints(newest: Date, now: Date): number {
  const ageDays = (now.getTime() - newest.getTime()) / DAY;
  return ageDays <= 7 ? 0 : Math.floor((ageDays - 7) / 7);
}

const valueOf = (e: EvaluationInput): number | null => (e.score !== null ? Math.min(1, Math.max(0, e.score)) : e.passed === null ? null : e.passed ? 1 : 0);

export function computeScore(
  evaluations: readonly EvaluationInput[],
  now: Date,
  options: { weights?: Record<string, number>; thresholds?: TierThresholds; windowDays?: number } = {},
): ScoreResult {
  const windowStart = now.getTime() - (options.windowDays ?? 90) * DAY;
  const counted = evaluations.filter((e) => e.observedAt.getTime() >= windowStart && e.observedAt.getTime() <= now.getTime() && valueOf(e) !== null);
  const newestEvidence = evaluations.reduce<Date | null>((m, e) => (e.observedAt.getTime() <= now.getTime() && (!m || e.observedAt > m) ? e.observedAt : m), null);
  if (counted.length === 0) return { score: null, tier: null, raw: null, decay: 0, dimensions: {}, newestEvidence, evaluationsCounted: 0 };
  const byDim = new Map<string, number[]>();
  for (const e of counted) byDim.set(e.dimension, [...(byDim.get(e.dimension) ?? []), valueOf(e)!]);
  const dimensions: ScoreResult['dimensions'] = {};
  let weighted = 0;
  let totalWeight = 0;
  for (const [dim, values] of [...byDim].sort(([a], [b]) => a.localeCompare(b))) {
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const weight = options.weights?.[dim] ?? 1;
    dimensions[dim] = { mean, count: values.length, weight };
    weighted += mean * weight;
    totalWeight += weight;
  }
  const raw = totalWeight > 0 ? Math.round((1000 * weighted) / totalWeight) : 0;
  const decay = newestEvidence ? decayPoints(newestEvidence, now) : 0;
  const score = Math.max(0, raw - decay);
  return { score, tier: tierOf(score, options.thresholds), raw, decay, dimensions, newestEvidence, evaluationsCounted: counted.length };
}

export type Freshness = 'fresh' | 'ageing' | 'stale' | 'none';

/** Evidence freshness from its age: fresh under `ageingAfter`, stale from `staleAfter`. */
export function freshnessOf(newest: Date | null, now: Date, thresholds = { ageingAfterMs: 7 * DAY, staleAfterMs: 30 * DAY }): Freshness {
  if (!newest) return 'none';
  const age = now.getTime() - newest.getTime();
  if (age >= thresholds.staleAfterMs) return 'stale';
  if (age >= thresholds.ageingAfterMs) return 'ageing';
  return 'fresh';
}
