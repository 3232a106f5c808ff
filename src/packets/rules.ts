import { scopesOverlap } from '../domain/scope.js';
import { TRUST_TIERS } from '../domain/trust-score.js';
import type { Policy } from '../policy/policy.schema.js';
import type { TrustPacket } from './packet.js';

/**
 * "What changes when the proof weakens?": the policy's consequence rules and the routing rules that
 * tighten, read against one agent (its grants, pacts, tier and evidence age), optionally scoped to a
 * workflow's actions. Pure functions of the policy and the agent's state.
 */

type Grant = TrustPacket['runtimeControls']['grants'][number];

export interface AgentState {
  riskTier: string;
  grants: Grant[];
  pacts: { severity: string; lastResult: 'passed' | 'failed' | null }[];
  tier: string | null;
  score: number | null;
  /** Age of the newest evidence, or null without any. */
  evidenceAgeMs: number | null;
}

const SEVERITY_RANK: Record<string, number> = { low: 0, medium: 1, high: 2, critical: 3 };
const tierRank = (t: string) => TRUST_TIERS.indexOf(t as (typeof TRUST_TIERS)[number]);
const list = (items: string[], max = 4) => (items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`);
const overlapsAny = (scope: string, actions: readonly string[]) => actions.some((a) => scopesOverlap(scope, a));

/** The grants a workflow's actions touch (all grants without a workflow). */
export function grantsInScope(grants: readonly Grant[], actions: readonly string[] | null): Grant[] {
  return actions ? grants.filter((g) => overlapsAny(g.scope, actions)) : [...grants];
}

export function routingInScope(rules: Policy['routing'], actions: readonly string[] | null): Policy['routing'] {
  return actions ? rules.filter((r) => r.match.action === undefined || overlapsAny(r.match.action, actions)) : rules;
}

export function consequencesInScope(rules: Policy['consequences'], actions: readonly string[] | null): Policy['consequences'] {
  return actions ? rules.filter((r) => r.then.contain || r.then.narrow.some((s) => overlapsAny(s, actions))) : rules;
}

function whenText(w: Policy['consequences'][number]['when']): string {
  const parts: string[] = [];
  if (w.pactViolated) parts.push(w.pactViolated === 'critical' ? 'a critical pact is violated' : `a pact of ${w.pactViolated} severity or worse is violated`);
  if (w.tierBelow) parts.push(`the tier falls below ${w.tierBelow}`);
  if (w.scoreDropOver !== undefined) parts.push(`the score drops by more than ${w.scoreDropOver} points at once`);
  if (w.evidenceOlderThan) parts.push(`the newest evidence is older than ${w.evidenceOlderThan.text}`);
  return parts.join(' and ');
}

const active = (g: Grant) => g.state === 'active' || g.state === 'granted';

/** Each consequence rule (in scope) with what it would do to this agent's grants (in scope). */
export function consequencesFor(rules: Policy['consequences'], agent: AgentState, actions: readonly string[] | null): TrustPacket['consequences']['rules'] {
  const grants = grantsInScope(agent.grants, actions);
  const where = actions ? ' in this workflow' : '';
  return consequencesInScope(rules, actions).map((rule) => {
    let effect: string;
    let hits: Grant[];
    if (rule.then.contain) {
      hits = grants.filter((g) => !g.keepInContainment && active(g));
      const kept = grants.filter((g) => g.keepInContainment).map((g) => g.scope);
      effect = hits.length
        ? `contain: suspends ${hits.length} of ${grants.length} grants${where} (${list(hits.map((g) => g.scope))})${kept.length ? `, keeps ${list(kept)}` : ''}`
        : `contain: no grant${where} to suspend`;
    } else {
      hits = grants.filter((g) => active(g) && rule.then.narrow.some((s) => scopesOverlap(s, g.scope)));
      effect = hits.length ? `narrow ${rule.then.narrow.join(', ')}: suspends ${list(hits.map((g) => g.scope))}` : `narrow ${rule.then.narrow.join(', ')}: touches none of its grants${where}`;
    }
    const w = rule.when;
    const hasPact = w.pactViolated === undefined || agent.pacts.some((p) => (SEVERITY_RANK[p.severity] ?? 0) >= SEVERITY_RANK[w.pactViolated!]!);
    const holds =
      (w.pactViolated === undefined || agent.pacts.some((p) => (SEVERITY_RANK[p.severity] ?? 0) >= SEVERITY_RANK[w.pactViolated!]! && p.lastResult === 'failed')) &&
      (w.tierBelow === undefined || (agent.tier !== null && tierRank(agent.tier) < tierRank(w.tierBelow))) &&
      w.scoreDropOver === undefined &&
      (w.evidenceOlderThan === undefined || agent.evidenceAgeMs === null || agent.evidenceAgeMs > w.evidenceOlderThan.ms);
    return { ruleId: rule.id, when: whenText(w), effect, applies: hits.length > 0 && hasPact, conditionHoldsNow: holds };
  });
}

/** Routing rules whose conditions are about weakening proof (stale evidence, a low tier or score), for this agent. */
export function tighteningRules(rules: Policy['routing'], agent: AgentState, actions: readonly string[] | null): TrustPacket['runtimeControls']['tightens'] {
  const out: TrustPacket['runtimeControls']['tightens'] = [];
  for (const rule of routingInScope(rules, actions)) {
    const m = rule.match;
    if (m.evidenceOlderThan === undefined && m.tierBelow === undefined && m.scoreBelow === undefined) continue;
    if (m.riskTier && !m.riskTier.includes(agent.riskTier as never)) continue;
    if (m.action !== undefined && !agent.grants.some((g) => scopesOverlap(m.action!, g.scope))) continue;
    const conditions: string[] = [];
    if (m.evidenceOlderThan) conditions.push(`evidence older than ${m.evidenceOlderThan.text}`);
    if (m.tierBelow) conditions.push(`tier below ${m.tierBelow}`);
    if (m.scoreBelow !== undefined) conditions.push(`score below ${m.scoreBelow}`);
    if (m.context?.amountOver !== undefined) conditions.push(`amount over ${m.context.amountOver}`);
    const effect = rule.approvers.length
      ? `routes to ${rule.approvers.join(', ')}${rule.quorum > 1 ? ` (quorum ${rule.quorum})` : ''}${rule.addApprovers.length ? ` and adds ${rule.addApprovers.join(', ')}` : ''}`
      : `adds ${rule.addApprovers.join(', ')} as approvers`;
    const inForceNow =
      (m.evidenceOlderThan === undefined || agent.evidenceAgeMs === null || agent.evidenceAgeMs > m.evidenceOlderThan.ms) &&
      (m.tierBelow === undefined || agent.tier === null || tierRank(agent.tier) < tierRank(m.tierBelow)) &&
      (m.scoreBelow === undefined || agent.score === null || agent.score < m.scoreBelow);
    out.push({ ruleId: rule.id, action: m.action ?? null, condition: conditions.join(' and '), effect, inForceNow });
  }
  return out;
}
