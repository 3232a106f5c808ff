/**
 * Would an update give a held agent more than it has? A contained or revoked agent must not get
 * back through `PUT /v1/agents/{id}` what a responder took away (or more): restore is the only way
 * out, and it follows the policy (second person, fresh evaluation). Narrowing and no-op updates
 * stay allowed, so the platform can keep syncing its registry during an incident.
 */
import { RISK_TIERS, type GrantConstraints, type RiskTier } from './agent.js';
import { TRUST_TIERS } from './trust-score.js';

/** The part of a grant that says what it allows. */
export interface GrantShape {
  scope: string;
  constraints: GrantConstraints;
  keepInContainment: boolean;
  expiresAt: Date | null;
}

export interface RegistrationShape {
  riskTier: RiskTier;
  grants: readonly GrantShape[];
}

/** A list constraint (currencies, recipient domains): absent allows every value. */
function listWidening(scope: string, key: string, before: readonly string[] | undefined, after: readonly string[] | undefined): string[] {
  if (before === undefined) return [];
  if (after === undefined) return [`grant ${scope} would lose its ${key} limit`];
  const added = after.filter((v) => !before.includes(v));
  return added.length ? [`grant ${scope} would allow ${key} ${added.join(', ')}`] : [];
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function constraintWidening(scope: string, before: GrantConstraints, after: GrantConstraints): string[] {
  const reasons: string[] = [];
  if (before.maxAmount !== undefined) {
    if (after.maxAmount === undefined) reasons.push(`grant ${scope} would lose its maxAmount limit (${before.maxAmount})`);
    else if (after.maxAmount > before.maxAmount) reasons.push(`grant ${scope} would raise maxAmount from ${before.maxAmount} to ${after.maxAmount}`);
  }
  reasons.push(...listWidening(scope, 'currencies', before.currencies, after.currencies));
  reasons.push(...listWidening(scope, 'recipientDomains', before.recipientDomains, after.recipientDomains));
  if (before.minTier !== undefined) {
    if (after.minTier === undefined) reasons.push(`grant ${scope} would lose its minTier limit (${before.minTier})`);
    else if (TRUST_TIERS.indexOf(after.minTier) < TRUST_TIERS.indexOf(before.minTier)) {
      reasons.push(`grant ${scope} would lower minTier from ${before.minTier} to ${after.minTier}`);
    }
  }
  // A constraint this code does not know how to compare: any change counts (fail closed).
  const known = new Set(['maxAmount', 'currencies', 'recipientDomains', 'minTier']);
  const b = before as Record<string, unknown>;
  const a = after as Record<string, unknown>;
  for (const key of Object.keys(b)) {
    if (!known.has(key) && !sameJson(b[key], a[key])) reasons.push(`grant ${scope} would change its ${key} constraint`);
  }
  return reasons;
}

/** One way an update allows more, with where in the request body it is (`riskTier`, `grants[2]`). */
export interface WideningChange {
  path: string;
  message: string;
}

/**
 * Every way `after` allows more than `before` (empty: the update only narrows, or changes nothing
 * that matters to permissions). Grants are matched by scope.
 */
export function wideningChanges(before: RegistrationShape, after: RegistrationShape): WideningChange[] {
  const changes: WideningChange[] = [];
  if (RISK_TIERS.indexOf(after.riskTier) < RISK_TIERS.indexOf(before.riskTier)) {
    changes.push({ path: 'riskTier', message: `riskTier would drop from ${before.riskTier} to ${after.riskTier}` });
  }
  after.grants.forEach((grant, i) => {
    const path = `grants[${i}]`;
    const old = before.grants.find((g) => g.scope === grant.scope);
    if (!old) {
      changes.push({ path, message: `grant ${grant.scope} would be new` });
      return;
    }
    const reasons: string[] = [];
    if (grant.keepInContainment && !old.keepInContainment) reasons.push(`grant ${grant.scope} would newly be kept in containment`);
    if (old.expiresAt !== null) {
      if (grant.expiresAt === null) reasons.push(`grant ${grant.scope} would lose its expiry`);
      else if (grant.expiresAt.getTime() > old.expiresAt.getTime()) reasons.push(`grant ${grant.scope} would expire later`);
    }
    reasons.push(...constraintWidening(grant.scope, old.constraints, grant.constraints));
    for (const message of reasons) changes.push({ path, message });
  });
  return changes;
}
