import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { auditEntryHash, canonicalJson, GENESIS_HASH } from '../../src/domain/audit-chain.js';
import { computeScore, decayPoints, freshnessOf, tierOf, type EvaluationInput } from '../../src/domain/trust-score.js';

/** Boundaries of the trust Score (docs/trust.md) and the audit chain's hash format, which outside verifiers recompute. */

const DAY = 86_400_000;
const now = new Date('2026-11-27T12:00:00Z');
const at = (daysAgo: number) => new Date(now.getTime() - daysAgo * DAY);
const ev = (dimension: string, v: boolean | number | null, daysAgo = 1): EvaluationInput => ({
  dimension,
  passed: typeof v === 'boolean' ? v : null,
  score: typeof v === 'number' ? v : null,
  observedAt: at(daysAgo),
});

describe('trust Score edges', () => {
  it('a graded score is clamped to 0..1; an evaluation with neither result does not count', () => {
    expect(computeScore([ev('a', 1.5)], now)).toMatchObject({ score: 1000, evaluationsCounted: 1 });
    expect(computeScore([ev('a', -0.5), ev('b', 1)], now)).toMatchObject({ score: 500, evaluationsCounted: 2 });
    expect(computeScore([ev('a', null), ev('a', true)], now)).toMatchObject({ score: 1000, evaluationsCounted: 1 });
    expect(computeScore([ev('a', null)], now)).toMatchObject({ score: null, tier: null, raw: null, evaluationsCounted: 0 });
  });

  it('a graded score wins over passed', () => {
    expect(computeScore([{ dimension: 'a', passed: true, score: 0.25, observedAt: at(1) }], now).score).toBe(250);
  });

  it('counts evaluations from exactly the window start up to now, never from the future', () => {
    expect(computeScore([ev('a', false, 90), ev('a', true, 1)], now)).toMatchObject({ score: 500, evaluationsCounted: 2 });
    expect(computeScore([ev('a', false, 90.001), ev('a', true, 1)], now)).toMatchObject({ score: 1000, evaluationsCounted: 1 });
    expect(computeScore([ev('a', false, 0), ev('a', true, 1)], now)).toMatchObject({ score: 500, evaluationsCounted: 2 });
    const future = computeScore([ev('a', false, -1), ev('a', true, 3)], now);
    expect(future).toMatchObject({ score: 1000, evaluationsCounted: 1, newestEvidence: at(3) });
    expect(computeScore([ev('a', true, 20)], now, { windowDays: 10 }).score).toBeNull();
  });

  it('the newest evidence is the latest evaluation up to now, even outside the window', () => {
    expect(computeScore([ev('a', true, 200), ev('a', true, 100)], now)).toMatchObject({ score: null, newestEvidence: at(100) });
    expect(computeScore([ev('a', true, 3), ev('a', true, 2), ev('b', true, 5)], now).newestEvidence).toEqual(at(2));
    expect(computeScore([], now).newestEvidence).toBeNull();
  });

  it('reports every dimension with its mean, count and weight, and the raw score before decay', () => {
    const r = computeScore([ev('safety', true, 21), ev('safety', false, 21), ev('accuracy', 0.9, 21)], now, { weights: { accuracy: 3 } });
    expect(r).toEqual({
      score: 798,
      tier: 'gold',
      raw: 800,
      decay: 2,
      dimensions: { accuracy: { mean: 0.9, count: 1, weight: 3 }, safety: { mean: 0.5, count: 2, weight: 1 } },
      newestEvidence: at(21),
      evaluationsCounted: 3,
    });
  });

  it('weights of zero everywhere give 0, not a division by zero', () => {
    expect(computeScore([ev('a', true)], now, { weights: { a: 0 } })).toMatchObject({ raw: 0, score: 0, tier: 'bronze' });
  });

  it('decay never takes the score below 0', () => {
    expect(computeScore([ev('a', 0.001, 85)], now)).toMatchObject({ raw: 1, decay: 11, score: 0 });
  });

  it('the tier uses the thresholds given', () => {
    expect(computeScore([ev('a', 0.6)], now, { thresholds: { silver: 100, gold: 200, platinum: 600 } }).tier).toBe('platinum');
    expect(tierOf(899)).toBe('gold');
  });

  it('decay counts whole weeks after the grace period', () => {
    expect(decayPoints(at(7.5), now)).toBe(0);
    expect(decayPoints(at(20.9), now)).toBe(1);
    expect(decayPoints(at(21), now)).toBe(2);
    expect(decayPoints(at(-3), now)).toBe(0);
  });

  it('freshness turns ageing and stale exactly at the thresholds', () => {
    expect(freshnessOf(at(7), now)).toBe('ageing');
    expect(freshnessOf(new Date(at(7).getTime() + 1), now)).toBe('fresh');
    expect(freshnessOf(new Date(at(30).getTime() + 1), now)).toBe('ageing');
    expect(freshnessOf(at(2), now, { ageingAfterMs: DAY, staleAfterMs: 2 * DAY })).toBe('stale');
  });
});

describe('audit chain format', () => {
  const entry = { seq: '42', at: new Date('2026-11-27T03:00:00Z'), actor: 'slack:U0A', action: 'agent.contained', subject: 'bot', payload: { reason: 'r', n: [1, 'two'] } };

  it('starts from 64 zeros', () => {
    expect(GENESIS_HASH).toBe('0000000000000000000000000000000000000000000000000000000000000000');
  });

  it('is sha256 of the previous hash, a newline and the canonical JSON of the entry', () => {
    const canonical = '{"action":"agent.contained","actor":"slack:U0A","at":"2026-11-27T03:00:00.000Z","payload":{"n":[1,"two"],"reason":"r"},"seq":"42","subject":"bot"}';
    const expected = createHash('sha256').update(`${GENESIS_HASH}\n${canonical}`).digest('hex');
    expect(auditEntryHash(GENESIS_HASH, entry)).toBe(expected);
  });

  it('changes with every field', () => {
    const h = auditEntryHash(GENESIS_HASH, entry);
    for (const change of [{ seq: '43' }, { at: new Date('2026-11-27T03:00:01Z') }, { action: 'agent.restored' }, { subject: 'other' }, { payload: { reason: 'r' } }]) {
      expect(auditEntryHash(GENESIS_HASH, { ...entry, ...change })).not.toBe(h);
    }
  });

  it('canonical JSON sorts keys by code unit, drops undefined members and keeps scalars as JSON', () => {
    expect(canonicalJson({ b: 1, B: 2, a: 3 })).toBe('{"B":2,"a":3,"b":1}');
    expect(canonicalJson({ keep: null, drop: undefined, s: 'q"uote' })).toBe('{"keep":null,"s":"q\\"uote"}');
    expect(canonicalJson([[], {}, [true, 1.5]])).toBe('[[],{},[true,1.5]]');
    expect(canonicalJson(undefined)).toBe('null');
    expect(canonicalJson('text')).toBe('"text"');
    expect(canonicalJson(7)).toBe('7');
  });
});
