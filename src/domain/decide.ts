import type { Policy } from '../policy/policy.schema.js';
import type { ActiveAction, Agent, Grant, OpenApproval } from './agent.js';
import { grantStatus } from './agent.js';
import { approvalCovers } from './approval-match.js';
import { matchReasons, ruleMatches, type RouteInput } from './approval-route.js';
import { globMatches } from './scope.js';
import { TRUST_TIERS } from './trust-score.js';

export type DecisionOutcome = 'allow' | 'deny' | 'approval_required';

export type ReasonCode =
  | 'view_stale'
  /** The caller asked for `atLeastVersion` and this replica's view did not reach it in time. */
  | 'view_behind'
  | 'unknown_agent'
  /** The agent was decommissioned (retired for good). */
  | 'agent_decommissioned'
  | 'agent_revoked'
  | 'agent_contained'
  | 'scope_narrowed'
  | 'no_grant'
  | 'grant_suspended'
  | 'grant_revoked'
  | 'grant_expired'
  | 'constraint_violated'
  | 'tier_below_minimum'
  | 'granted'
  | 'approved'
  | 'approval_required'
  /** Something went wrong while deciding: fail closed (counted in armalo_decision_errors_total). */
  | 'decision_error';

export interface Reason {
  code: ReasonCode;
  message: string;
}

export interface DecisionRequest {
  agentId: string;
  action: string;
  context: Record<string, unknown>;
}

export interface Decision {
  decision: DecisionOutcome;
  reasons: Reason[];
  /** The grant that allowed the action. */
  grantId?: string;
}

function describe(action: ActiveAction): string {
  const until = action.expiresAt ? ` until ${action.expiresAt.toISOString()}` : '';
  return `${action.kind} by ${action.actor} at ${action.createdAt.toISOString()}${until}: ${action.reason} (action ${action.id})`;
}

/** Checks a grant's constraints against the request context; returns what was violated. */
export function constraintViolations(grant: Grant, context: Record<string, unknown>): string[] {
  const c = grant.constraints;
  const problems: string[] = [];
  if (c.maxAmount !== undefined) {
    const amount = context.amount;
    if (typeof amount !== 'number') {
      problems.push(`grant ${grant.scope} has maxAmount ${c.maxAmount}: context.amount is required`);
    } else if (amount > c.maxAmount) {
      problems.push(`amount ${amount} exceeds maxAmount ${c.maxAmount} of grant ${grant.scope}`);
    }
  }
  if (c.currencies !== undefined) {
    const currency = context.currency;
    if (typeof currency !== 'string' || !c.currencies.includes(currency.toUpperCase())) {
      problems.push(`currency ${typeof currency === 'string' ? currency : '(missing)'} is not one of ${c.currencies.join(', ')} allowed by grant ${grant.scope}`);
    }
  }
  if (c.recipientDomains !== undefined) {
    const domain = context.recipientDomain;
    if (typeof domain !== 'string' || !c.recipientDomains.includes(domain.toLowerCase())) {
      problems.push(`recipient domain ${typeof domain === 'string' ? domain : '(missing)'} is not one of ${c.recipientDomains.join(', ')} allowed by grant ${grant.scope}`);
    }
  }
  return problems;
}

/**
 * The runtime decision: may this agent do this now? Fails closed: anything not positively
 * allowed by an active grant within its constraints is denied, and every reason is listed.
 */
export function decide(agent: Agent | undefined, request: DecisionRequest, now: Date, viewFresh = true): Decision {
  if (!viewFresh) {
    return {
      decision: 'deny',
      reasons: [{ code: 'view_stale', message: 'this replica cannot confirm its permission view is current; failing closed' }],
    };
  }
  if (!agent) {
    return { decision: 'deny', reasons: [{ code: 'unknown_agent', message: `unknown agent ${request.agentId}` }] };
  }
  if (agent.status === 'decommissioned') {
    const d = agent.decommissioned;
    return { decision: 'deny', reasons: [{ code: 'agent_decommissioned', message: d ? `agent was decommissioned by ${d.by} at ${d.at.toISOString()}: ${d.reason}` : 'agent was decommissioned' }] };
  }
  const reasons: Reason[] = [];
  const revoke = agent.activeActions.find((a) => a.kind === 'revoke');
  if (revoke) {
    return { decision: 'deny', reasons: [{ code: 'agent_revoked', message: `agent is revoked: ${describe(revoke)}` }] };
  }
  const covering = agent.grants.filter((g) => globMatches(g.scope, request.action));
  if (covering.length === 0) {
    return { decision: 'deny', reasons: [{ code: 'no_grant', message: `no grant covers ${request.action}` }] };
  }
  for (const narrow of agent.activeActions) {
    if (narrow.kind !== 'narrow') continue;
    const hit = narrow.scopes.find((s) => globMatches(s, request.action));
    if (hit) reasons.push({ code: 'scope_narrowed', message: `${request.action} is narrowed (${hit}) by ${describe(narrow)}` });
  }
  if (reasons.length) return { decision: 'deny', reasons };

  const contain = agent.activeActions.find((a) => a.kind === 'contain');
  for (const grant of covering) {
    const status = grantStatus(agent, grant, now);
    if (status.state === 'suspended' && status.heldBy) {
      if (status.heldBy.kind === 'contain') {
        reasons.push({ code: 'agent_contained', message: `agent is contained and grant ${grant.scope} is not kept in containment: ${describe(status.heldBy)}` });
      } else {
        reasons.push({ code: 'grant_suspended', message: `grant ${grant.scope} is suspended: ${describe(status.heldBy)}` });
      }
      continue;
    }
    if (status.state === 'revoked') {
      reasons.push({ code: 'grant_revoked', message: `grant ${grant.scope} is revoked` });
      continue;
    }
    if (status.state === 'expired') {
      reasons.push({ code: 'grant_expired', message: `grant ${grant.scope} expired at ${grant.expiresAt?.toISOString()}` });
      continue;
    }
    if (grant.constraints.minTier) {
      const have = agent.trustTier ?? null;
      if (!have || TRUST_TIERS.indexOf(have) < TRUST_TIERS.indexOf(grant.constraints.minTier)) {
        reasons.push({
          code: 'tier_below_minimum',
          message: `grant ${grant.scope} needs trust tier ${grant.constraints.minTier} or better; the agent is ${have ?? 'not scored yet'}`,
        });
        continue;
      }
    }
    const violations = constraintViolations(grant, request.context);
    if (violations.length) {
      for (const v of violations) reasons.push({ code: 'constraint_violated', message: v });
      continue;
    }
    return allowedBy(grant, contain !== undefined);
  }
  return { decision: 'deny', reasons: dedupe(reasons) };
}

// The allow a grant gives is the same every time while the view holds that grant object (a change
// to the agent stores new objects): made once, frozen (nothing may edit a shared answer) and reused,
// so the hot path allocates nothing for it and its JSON can be kept too (decisionAnswerJson).
const allows = new WeakMap<Grant, Decision>();
const allowsContained = new WeakMap<Grant, Decision>();

function allowedBy(grant: Grant, contained: boolean): Decision {
  const cache = contained ? allowsContained : allows;
  let decision = cache.get(grant);
  if (!decision) {
    const reasons: Reason[] = [Object.freeze({ code: 'granted' as const, message: `allowed by grant ${grant.scope}` })];
    if (contained) reasons.push(Object.freeze({ code: 'granted' as const, message: `agent is contained; grant ${grant.scope} is kept in containment` }));
    decision = Object.freeze({ decision: 'allow' as const, reasons: Object.freeze(reasons) as Reason[], grantId: grant.id });
    cache.set(grant, decision);
  }
  return decision;
}

function dedupe(reasons: Reason[]): Reason[] {
  const seen = new Set<string>();
  return reasons.filter((r) => (seen.has(r.message) ? false : (seen.add(r.message), true)));
}

/** The routing rules as the decision path reads them (the policy's `routing`). */
export type RoutingRules = Policy['routing'];

/**
 * The second step of a decision, after the grants allowed it: may a routing rule put it under
 * approval? Pure and in memory: the agent's trust (score, tier, newest evidence) and its open
 * approvals come from the replica's view. The answer is final, except when a single-use approval
 * would allow it: then the caller must consume one of `consume.candidates` (in Postgres, exactly
 * once across replicas) and answer with `approvedBy` on success, `approvalRequired` otherwise.
 */
export type RoutedStep =
  | { kind: 'final'; decision: Decision; approvalRequestId?: string }
  | { kind: 'consume'; rule: MatchedRule; candidates: string[]; pendingId?: string };

export interface MatchedRule {
  id: string;
  why: string[];
}

export function hasApprovalRouting(rules: RoutingRules): boolean {
  return rules.some((r) => r.approvers.length > 0);
}

/** What routing rules match on, from the agent's picture (its trust data included) at `now`. */
export function routeInputOf(agent: Agent, action: string, context: Record<string, unknown>, now: Date): RouteInput {
  return {
    action,
    context,
    riskTier: agent.riskTier,
    score: agent.trustScore ?? null,
    tier: agent.trustTier ?? null,
    evidenceAgeMs: agent.newestEvidenceAt ? now.getTime() - agent.newestEvidenceAt.getTime() : null,
  };
}

export function routeDecision(allowed: Decision, agent: Agent, request: DecisionRequest, rules: RoutingRules, approvals: readonly OpenApproval[], now: Date): RoutedStep {
  const input = routeInputOf(agent, request.action, request.context, now);
  const found = rules.find((r) => r.approvers.length > 0 && ruleMatches(r.match, input));
  if (!found) return { kind: 'final', decision: allowed };
  const rule: MatchedRule = { id: found.id, why: matchReasons(found.match, input) };
  // Bound to the whole context the approvers saw: amount as a ceiling, every other key equal.
  const covering = approvals.filter((a) => a.action === request.action && approvalCovers(a.context, request.context).covers);
  const nowMs = now.getTime();
  const windowed = covering
    .filter((a) => a.status === 'approved' && a.grantUntil !== null && a.grantUntil.getTime() > nowMs)
    .sort(byTime((a) => a.decidedAt))[0];
  if (windowed) return { kind: 'final', decision: approvedBy(allowed, rule, windowed.id), approvalRequestId: windowed.id };
  const pendingId = covering.filter((a) => a.status === 'pending').sort(byTime((a) => a.createdAt, -1))[0]?.id;
  const singleUse = covering.filter((a) => a.status === 'approved' && a.grantUntil === null).sort(byTime((a) => a.decidedAt));
  if (singleUse.length) return { kind: 'consume', rule, candidates: singleUse.map((a) => a.id), ...(pendingId ? { pendingId } : {}) };
  return { kind: 'final', decision: approvalRequired(request, rule, pendingId), ...(pendingId ? { approvalRequestId: pendingId } : {}) };
}

/** The allow, with the approval that let it through. */
export function approvedBy(allowed: Decision, rule: MatchedRule, requestId: string): Decision {
  return { ...allowed, reasons: [...allowed.reasons, { code: 'approved', message: `approved by request ${requestId} (rule ${rule.id})` }] };
}

/** The answer when a rule requires approval and none is usable: names the pending request, if any. */
export function approvalRequired(request: DecisionRequest, rule: MatchedRule, pendingId: string | undefined): Decision {
  return {
    decision: 'approval_required',
    reasons: [
      {
        code: 'approval_required',
        message: `${request.action} needs approval under routing rule ${rule.id} (${rule.why.join(', ')})${pendingId ? `; request ${pendingId} is pending` : '; create one with POST /v1/approval-requests'}`,
      },
    ],
  };
}

function byTime<T>(at: (item: T) => Date | null, direction: 1 | -1 = 1): (a: T, b: T) => number {
  return (a, b) => direction * ((at(a)?.getTime() ?? 0) - (at(b)?.getTime() ?? 0));
}
