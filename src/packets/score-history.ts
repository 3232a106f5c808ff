import { decayPoints, tierOf, type EvaluationInput, type TierThresholds, type TrustTier } from '../domain/trust-score.js';

/**
 * The score history of a trust packet, by evidence time: the score as of the end of each UTC day,
 * replayed from the evidence observed up to then with the live formula (src/domain/trust-score.ts:
 * 90-day window, per-dimension means, weights, −1 per week of decay after 7 days of grace). An
 * import of three months of evidence on one day therefore draws three months, not one day.
 *
 * An external score (Armalo's `score.changed`) stands at its own time and wins from then on, until
 * a later external one; the last point is the live score now, so the chart ends where the headline
 * is. Linear in the evidence of the replayed window per day (no quadratic copying), so five years of
 * daily evidence replay in milliseconds.
 */

const DAY = 86_400_000;

export interface HistoryPoint {
  at: string;
  score: number;
  tier: TrustTier;
  source: 'computed' | 'external';
}

export interface ReplayOptions {
  days?: number;
  windowDays?: number;
  weights?: Record<string, number>;
  thresholds?: TierThresholds;
}

const valueOf = (e: EvaluationInput): number | null => (e.score !== null ? Math.min(1, Math.max(0, e.score)) : e.passed === null ? null : e.passed ? 1 : 0);

/** The computed score as of `at` from evaluations sorted by time (the same numbers as computeScore). */
function scoreAt(sorted: readonly EvaluationInput[], times: readonly number[], at: number, opts: ReplayOptions): number | null {
  const windowStart = at - (opts.windowDays ?? 90) * DAY;
  // First index observed at or after the window start, and the end (exclusive) at or before `at`.
  let lo = lowerBound(times, windowStart);
  const hi = upperBound(times, at);
  const sums = new Map<string, { sum: number; n: number }>();
  let counted = 0;
  for (; lo < hi; lo++) {
    const e = sorted[lo]!;
    const v = valueOf(e);
    if (v === null) continue;
    const acc = sums.get(e.dimension);
    if (acc) {
      acc.sum += v;
      acc.n++;
    } else sums.set(e.dimension, { sum: v, n: 1 });
    counted++;
  }
  if (counted === 0) return null;
  let weighted = 0;
  let totalWeight = 0;
  for (const dim of [...sums.keys()].sort((a, b) => a.localeCompare(b))) {
    const { sum, n } = sums.get(dim)!;
    const weight = opts.weights?.[dim] ?? 1;
    weighted += (sum / n) * weight;
    totalWeight += weight;
  }
  const raw = totalWeight > 0 ? Math.round((1000 * weighted) / totalWeight) : 0;
  const newest = hi > 0 ? times[hi - 1]! : null;
  const decay = newest === null ? 0 : decayPoints(new Date(newest), new Date(at));
  return Math.max(0, raw - decay);
}

function lowerBound(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function upperBound(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** End of the UTC day that contains `ms` (the last millisecond). */
const endOfDay = (ms: number) => Math.floor(ms / DAY) * DAY + DAY - 1;

/**
 * One point per UTC day of the last `days` (today's at `now`), for days with a score. `live` is the
 * score in force now (the latest stored one); when given it is today's point.
 */
export function replayScoreHistory(
  evaluations: readonly EvaluationInput[],
  externals: readonly { at: Date; score: number; tier: string }[],
  now: Date,
  opts: ReplayOptions & { live?: { score: number; tier: string; source: 'computed' | 'external' } | null } = {},
): { from: string; points: HistoryPoint[] } {
  const nDays = opts.days ?? 90;
  const sorted = [...evaluations].sort((a, b) => a.observedAt.getTime() - b.observedAt.getTime());
  const times = sorted.map((e) => e.observedAt.getTime());
  const ext = [...externals].sort((a, b) => a.at.getTime() - b.at.getTime());
  const nowMs = now.getTime();
  const firstDay = Math.floor(nowMs / DAY) * DAY - (nDays - 1) * DAY;
  const points: HistoryPoint[] = [];
  let e = 0;
  let external: (typeof ext)[number] | undefined;
  for (let d = 0; d < nDays; d++) {
    const at = d === nDays - 1 ? nowMs : Math.min(endOfDay(firstDay + d * DAY), nowMs);
    while (e < ext.length && ext[e]!.at.getTime() <= at) external = ext[e++];
    let point: HistoryPoint | null = null;
    if (external) point = { at: new Date(at).toISOString(), score: external.score, tier: external.tier as TrustTier, source: 'external' };
    else {
      const score = scoreAt(sorted, times, at, opts);
      if (score !== null) point = { at: new Date(at).toISOString(), score, tier: tierOf(score, opts.thresholds), source: 'computed' };
    }
    if (d === nDays - 1 && opts.live) point = { at: new Date(at).toISOString(), score: opts.live.score, tier: opts.live.tier as TrustTier, source: opts.live.source };
    if (point) points.push(point);
  }
  return { from: new Date(firstDay).toISOString(), points };
}

/** The 30-day change and trend from a daily series: today's score against the one 30 days before. */
export function changeOver(points: readonly HistoryPoint[], now: Date, days = 30): { change: number | null; trend: 'up' | 'down' | 'flat' | 'none' } {
  const last = points.at(-1);
  // The point of the UTC day `days` ago (or the latest before it).
  const cutoffDay = Math.floor((now.getTime() - days * DAY) / DAY);
  let base: HistoryPoint | undefined;
  for (const p of points) {
    if (Math.floor(Date.parse(p.at) / DAY) <= cutoffDay) base = p;
    else break;
  }
  if (!last || !base) return { change: null, trend: 'none' };
  const change = last.score - base.score;
  return { change, trend: change > 0 ? 'up' : change < 0 ? 'down' : 'flat' };
}
