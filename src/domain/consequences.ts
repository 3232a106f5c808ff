import type { Policy } from '../policy/policy.schema.js';
import { TRUST_TIERS, type TrustTier } from './trust-score.js';

/** What happened to an agent's trust, as far as consequence rules are concerned. */
export type TrustTrigger =
  | { kind: 'violation'; eventId: string; pactId: string; severity: 'low' | 'medium' | 'high' | 'critical' }
  | { kind: 'score'; eventId: string; score: number; tier: TrustTier; previousScore: number | null; previousTier: TrustTier | null }
  | { kind: 'evidence'; eventId: string; ageMs: number };

/** The agent's trust state when the trigger is evaluated (for conditions that are states, not events). */
export interface TrustState {
  tier: TrustTier | null;
  evidenceAgeMs: number | null;
}

const SEVERITY_RANK = { low: 0, medium: 1, high: 2, critical: 3 } as const;
const tierRank = (t: TrustTier) => TRUST_TIERS.indexOf(t);

export interface FiredConsequence {
  ruleId: string;
  action: { kind: 'contain' } | { kind: 'narrow'; scopes: string[] };
  why: string;
  /** Fires once per (rule, trigger): the idempotency key of the action it takes. */
  key: string;
}

/**
 * Which consequence rules this trigger fires. A rule fires when the trigger is one of its events
 * (a violation for `pactViolated`, a score change for `tierBelow`/`scoreDropOver`, stale evidence
 * for `evidenceOlderThan`) and every condition it lists holds. `tierBelow` fires when the tier
 * falls below the level, not again while it stays there.
 */
export function firedConsequences(rules: Policy['consequences'], trigger: TrustTrigger, state: TrustState): FiredConsequence[] {
  const fired: FiredConsequence[] = [];
  for (const rule of rules) {
    const w = rule.when;
    const reasons: string[] = [];
    let triggered = false;
    let holds = true;
    if (w.pactViolated !== undefined) {
      const ok = trigger.kind === 'violation' && SEVERITY_RANK[trigger.severity] >= SEVERITY_RANK[w.pactViolated];
      if (ok && trigger.kind === 'violation') reasons.push(`pact ${trigger.pactId} violated (${trigger.severity})`);
      triggered ||= ok;
      holds &&= ok;
    }
    if (w.tierBelow !== undefined) {
      const limit = tierRank(w.tierBelow);
      if (trigger.kind === 'score') {
        const ok = tierRank(trigger.tier) < limit && (trigger.previousTier === null || tierRank(trigger.previousTier) >= limit);
        if (ok) reasons.push(`tier fell to ${trigger.tier} (below ${w.tierBelow})`);
        triggered ||= ok;
        holds &&= ok;
      } else {
        holds &&= state.tier !== null && tierRank(state.tier) < limit;
      }
    }
    if (w.scoreDropOver !== undefined) {
      const ok = trigger.kind === 'score' && trigger.previousScore !== null && trigger.previousScore - trigger.score > w.scoreDropOver;
      if (ok && trigger.kind === 'score') reasons.push(`score dropped ${trigger.previousScore! - trigger.score} points to ${trigger.score}`);
      triggered ||= ok;
      holds &&= ok;
    }
    if (w.evidenceOlderThan !== undefined) {
      const age = trigger.kind === 'evidence' ? trigger.ageMs : state.evidenceAgeMs;
      const ok = age === null || age > w.evidenceOlderThan.ms;
      if (ok) reasons.push(`evidence older than ${w.evidenceOlderThan.text}`);
      if (trigger.kind === 'evidence') triggered ||= ok;
      holds &&= ok;
    }
    if (!triggered || !holds) continue;
    const why = `consequence ${rule.id}: ${reasons.join(', ')}`;
    const key = `consequence:${rule.id}:${trigger.eventId}`;
    if (rule.then.contain) fired.push({ ruleId: rule.id, action: { kind: 'contain' }, why, key });
    else if (rule.then.narrow.length) fired.push({ ruleId: rule.id, action: { kind: 'narrow', scopes: rule.then.narrow }, why, key });
  }
  return fired;
}
