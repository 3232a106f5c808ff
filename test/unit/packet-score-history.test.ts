import { describe, expect, it } from 'vitest';
import { computeScore, type EvaluationInput } from '../../src/domain/trust-score.js';
import { changeOver, replayScoreHistory } from '../../src/packets/score-history.js';

const DAY = 86_400_000;
const NOW = new Date('2026-12-02T11:00:00.000Z');

/** A small deterministic generator (no Math.random: the table must be the same on every run). */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

function evidence(days: number, perDay: number, seed = 7): EvaluationInput[] {
  const r = rng(seed);
  const out: EvaluationInput[] = [];
  for (let d = 0; d < days; d++) {
    for (let k = 0; k < perDay; k++) {
      const dim = ['safety', 'accuracy', 'reliability'][Math.floor(r() * 3)]!;
      const graded = r() < 0.5;
      out.push({ dimension: dim, passed: graded ? null : r() < 0.85, score: graded ? Math.round(r() * 1000) / 1000 : null, observedAt: new Date(NOW.getTime() - d * DAY - Math.floor(r() * DAY)) });
    }
  }
  return out;
}

describe('score history by evidence time', () => {
  it('is the live formula replayed: each day equals computeScore over the evidence observed up to then', () => {
    const evals = evidence(200, 3);
    const weights = { safety: 2 };
    const { points } = replayScoreHistory(evals, [], NOW, { weights });
    expect(points).toHaveLength(90);
    for (const p of points) {
      const at = new Date(p.at);
      expect(p.score, p.at).toBe(computeScore(evals, at, { weights }).score);
      expect(p.source).toBe('computed');
    }
  });

  it('an import on one day still draws the real 90 days, spread over 90 distinct dates', () => {
    // 120 evaluations over 90 days, all received today: the history is by observation time.
    const evals = evidence(90, 1, 3).concat(evidence(30, 1, 5));
    const { points, from } = replayScoreHistory(evals, [], NOW);
    expect(new Set(points.map((p) => p.at.slice(0, 10))).size).toBe(points.length);
    expect(points.length).toBeGreaterThanOrEqual(89);
    expect(Date.parse(from)).toBeLessThanOrEqual(NOW.getTime() - 89 * DAY);
    expect(points.at(-1)!.at).toBe(NOW.toISOString());
  });

  it('decay shows when evidence stops coming', () => {
    const evals = evidence(10, 2).map((e) => ({ ...e, observedAt: new Date(e.observedAt.getTime() - 60 * DAY) }));
    const { points } = replayScoreHistory(evals, [], NOW);
    const last = points.at(-1)!;
    expect(last.score).toBe(computeScore(evals, NOW).score);
    expect(computeScore(evals, NOW).decay).toBeGreaterThan(0);
  });

  it('an external score stands from its own time and wins from then on; the last point is the live score', () => {
    const evals = evidence(120, 2);
    const at = new Date(NOW.getTime() - 20 * DAY);
    const { points } = replayScoreHistory(evals, [{ at, score: 333, tier: 'bronze' }], NOW, { live: { score: 333, tier: 'bronze', source: 'external' } });
    const before = points.filter((p) => Date.parse(p.at) < at.getTime());
    const after = points.filter((p) => Date.parse(p.at) >= at.getTime());
    expect(before.every((p) => p.source === 'computed')).toBe(true);
    expect(after.length).toBeGreaterThan(15);
    expect(after.every((p) => p.source === 'external' && p.score === 333)).toBe(true);
  });

  it('no evidence in a window: no point that day (a gap, not a zero)', () => {
    const evals = evidence(5, 2);
    const { points } = replayScoreHistory(evals, [], NOW);
    // Five days of evidence (at random hours) touch at most six UTC days; nothing before them.
    expect(points.length).toBeGreaterThanOrEqual(5);
    expect(points.length).toBeLessThanOrEqual(6);
    expect(Date.parse(points[0]!.at)).toBeGreaterThan(NOW.getTime() - 7 * DAY);
  });

  it('30-day change and trend come from the daily series', () => {
    const pts = Array.from({ length: 90 }, (_, i) => ({ at: new Date(NOW.getTime() - (89 - i) * DAY).toISOString(), score: 600 + i, tier: 'silver' as const, source: 'computed' as const }));
    expect(changeOver(pts, NOW)).toEqual({ change: 30, trend: 'up' });
    expect(changeOver(pts.slice(70), NOW)).toEqual({ change: null, trend: 'none' });
    expect(changeOver([], NOW)).toEqual({ change: null, trend: 'none' });
  });
});
