import type { Agent, RiskTier } from './agent.js';
import { RISK_TIERS } from './agent.js';
import { invalidInput } from './errors.js';
import { SCOPE_PATTERN, scopesOverlap } from './scope.js';

/**
 * Which agents a fleet action (`POST /v1/actions`, `/armalo contain scope:payments:*`) acts on.
 * Every key given must match (AND); at least one key is required, so "every agent" can never be
 * selected by leaving the selector out.
 *
 * - `scope`: a scope glob (the grammar of grants and narrow lists). An agent matches when one of its
 *   grants overlaps the glob, the same test a narrow uses to find what it hits: `payments:*` matches
 *   an agent holding `payments:transfer`, `payments:*` or `*`, because each of those can be used for
 *   a payments action. Containment errs on the side of catching every agent that can use the tool.
 * - `owner`: the agent's owner, compared case-insensitively.
 * - `riskTier`: the agent's risk tier.
 *
 * Decommissioned agents never match.
 */
export interface FleetSelector {
  scope?: string;
  owner?: string;
  riskTier?: RiskTier;
}

export const SELECTOR_KEYS = ['scope', 'owner', 'riskTier'] as const;
/** The chat words for the selector keys (`risk:` is `riskTier`). */
export const CHAT_SELECTOR_KEYS: Record<string, keyof FleetSelector> = { scope: 'scope', owner: 'owner', risk: 'riskTier' };

const OWNER_MAX = 320;

/** Checks a selector's values; throws a coded invalid-input error naming what is wrong. */
export function checkSelector(selector: FleetSelector): FleetSelector {
  const keys = SELECTOR_KEYS.filter((k) => selector[k] !== undefined);
  if (keys.length === 0) throw invalidInput('the selector is empty: give at least one of scope, owner or riskTier (an empty selector would select every agent)');
  if (selector.scope !== undefined && (!SCOPE_PATTERN.test(selector.scope) || selector.scope.length > 200)) {
    throw invalidInput(`selector scope "${selector.scope.slice(0, 80)}" is not a scope glob (lowercase segments separated by ":", "*" as a wildcard)`);
  }
  if (selector.owner !== undefined && (selector.owner.trim() === '' || selector.owner.length > OWNER_MAX)) {
    throw invalidInput('selector owner must be a non-empty owner (an email) of at most 320 characters');
  }
  if (selector.riskTier !== undefined && !(RISK_TIERS as readonly string[]).includes(selector.riskTier)) {
    throw invalidInput(`selector riskTier "${String(selector.riskTier).slice(0, 40)}" is not one of ${RISK_TIERS.join(', ')}`);
  }
  return {
    ...(selector.scope !== undefined ? { scope: selector.scope } : {}),
    ...(selector.owner !== undefined ? { owner: selector.owner.trim().toLowerCase() } : {}),
    ...(selector.riskTier !== undefined ? { riskTier: selector.riskTier } : {}),
  };
}

/** True when the agent is selected. The final word on the set: applied to agents read under their row locks. */
export function matchesSelector(agent: Agent, selector: FleetSelector): boolean {
  if (agent.status === 'decommissioned') return false;
  if (selector.owner !== undefined && agent.owner.toLowerCase() !== selector.owner.toLowerCase()) return false;
  if (selector.riskTier !== undefined && agent.riskTier !== selector.riskTier) return false;
  if (selector.scope !== undefined && !agent.grants.some((g) => scopesOverlap(selector.scope!, g.scope))) return false;
  return true;
}

/**
 * The selector as words, in a fixed order (`scope:payments:* owner:a@example.com risk:high`): what
 * notices show, what chat accepts, and the key a restore by the same selector finds its incident by.
 */
export function selectorText(selector: FleetSelector): string {
  const parts: string[] = [];
  if (selector.scope !== undefined) parts.push(`scope:${selector.scope}`);
  if (selector.owner !== undefined) parts.push(`owner:${selector.owner.toLowerCase()}`);
  if (selector.riskTier !== undefined) parts.push(`risk:${selector.riskTier}`);
  return parts.join(' ');
}

/**
 * A scope glob as a SQL LIKE pattern with the same meaning (`*` is any run of characters, `:`
 * included). Scopes are `[a-z0-9_.-:*]`: only `_` (and, defensively, `%` and `\`) need escaping.
 */
export function globToLike(glob: string): string {
  return glob.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, '%');
}
