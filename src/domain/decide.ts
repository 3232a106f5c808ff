import type { ActiveAction, Agent, Grant } from './agent.js';
import { grantStatus } from './agent.js';
import { globMatches } from './scope.js';
import { TRUST_TIERS } from './trust-score.js';

export type DecisionOutcome = 'allow' | 'deny' | 'approval_required';

export type ReasonCode =
  | 'view_stale'
  | 'unknown_agent'
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
  | 'approval_required';

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
    const allowReasons: Reason[] = [{ code: 'granted', message: `allowed by grant ${grant.scope}` }];
    if (contain) {
      allowReasons.push({ code: 'granted', message: `agent is contained; grant ${grant.scope} is kept in containment` });
    }
    return { decision: 'allow', reasons: allowReasons, grantId: grant.id };
  }
  return { decision: 'deny', reasons: dedupe(reasons) };
}

function dedupe(reasons: Reason[]): Reason[] {
  const seen = new Set<string>();
  return reasons.filter((r) => (seen.has(r.message) ? false : (seen.add(r.message), true)));
}
