import type { Policy } from '../policy/policy.schema.js';
import type { RiskTier } from './agent.js';
import { globMatches } from './scope.js';
import { TRUST_TIERS, type TrustTier } from './trust-score.js';

/**
 * Approval routing as pure functions: who must approve a request, and when it is approved.
 * Rules (docs/policy.md): the first matching rule with `approvers` sets the route (approvers,
 * quorum, timers, escalation, channel); every other matching rule with `addApprovers` adds a
 * requirement of its own; a quorum counts distinct people, and one person fills one slot only.
 */

/** One person, however many identities and roles the policy lists them under. */
export interface Person {
  key: string;
  emails: string[];
  slack: string[];
  teams: string[];
  roles: string[];
}

export interface RouteRequirement {
  ruleId: string;
  roles: string[];
  /** Person keys who can fill this requirement. */
  people: string[];
  count: number;
}

export interface RouteSnapshot {
  ruleId: string;
  matched: string[];
  /** Why each matching rule matched (the card shows why a route was tightened). */
  why?: Record<string, string[]>;
  /** The agent's trust when the request was made. */
  trust?: { score: number | null; tier: TrustTier | null; evidenceAgeMs: number | null };
  requirements: RouteRequirement[];
  people: Record<string, Person>;
  remindAfterMs: number | null;
  escalateAfterMs: number | null;
  escalateTo: string[];
  expireAfterMs: number;
  grantForMs: number | null;
  channel: string | null;
}

export const DEFAULT_EXPIRE_AFTER_MS = 24 * 3600_000;

/** Everyone in the policy, identities merged: members sharing an email, Slack id or Teams id are one person. */
export function policyPeople(policy: Policy): Person[] {
  const people: Person[] = [];
  const byIdentity = new Map<string, Person>();
  for (const [role, def] of Object.entries(policy.roles)) {
    for (const m of def.members) {
      const ids = [m.email && `email:${m.email.toLowerCase()}`, m.slack && `slack:${m.slack}`, m.teams && `teams:${m.teams.toLowerCase()}`].filter(
        (x): x is string => !!x,
      );
      const found = [...new Set(ids.map((id) => byIdentity.get(id)).filter((p): p is Person => !!p))];
      let person: Person;
      if (found.length === 0) {
        person = { key: '', emails: [], slack: [], teams: [], roles: [] };
        people.push(person);
      } else {
        person = found[0]!;
        for (const other of found.slice(1)) {
          // Two people so far turn out to be one: merge.
          person.emails.push(...other.emails);
          person.slack.push(...other.slack);
          person.teams.push(...other.teams);
          person.roles.push(...other.roles);
          people.splice(people.indexOf(other), 1);
        }
      }
      if (m.email) person.emails.push(m.email.toLowerCase());
      if (m.slack) person.slack.push(m.slack);
      if (m.teams) person.teams.push(m.teams.toLowerCase());
      person.roles.push(role);
      for (const id of [...person.emails.map((e) => `email:${e}`), ...person.slack.map((s) => `slack:${s}`), ...person.teams.map((t) => `teams:${t}`)]) {
        byIdentity.set(id, person);
      }
    }
  }
  for (const p of people) {
    p.emails = [...new Set(p.emails)].sort();
    p.slack = [...new Set(p.slack)].sort();
    p.teams = [...new Set(p.teams)].sort();
    p.roles = [...new Set(p.roles)].sort();
    p.key = [...p.emails.map((e) => `email:${e}`), ...p.slack.map((s) => `slack:${s}`), ...p.teams.map((t) => `teams:${t}`)].sort()[0]!;
  }
  return people;
}

/** Is `who` (an owner string, or a chat identity) this person? Emails compare case-insensitively. */
export function isPerson(person: Person, who: { email?: string; slack?: string; teams?: string; text?: string }): boolean {
  const text = who.text?.trim();
  if (text) {
    const lower = text.toLowerCase();
    if (person.emails.includes(lower) || person.slack.includes(text) || person.teams.includes(lower)) return true;
    const [platform, id] = [text.slice(0, text.indexOf(':')), text.slice(text.indexOf(':') + 1)];
    if (platform === 'slack' && person.slack.includes(id)) return true;
    if (platform === 'teams' && person.teams.includes(id.toLowerCase())) return true;
  }
  return (
    (who.email !== undefined && person.emails.includes(who.email.toLowerCase())) ||
    (who.slack !== undefined && person.slack.includes(who.slack)) ||
    (who.teams !== undefined && person.teams.includes(who.teams.toLowerCase()))
  );
}

export interface RouteInput {
  action: string;
  context: Record<string, unknown>;
  riskTier: RiskTier;
  /** Age of the agent's newest evaluation evidence; null when there is none. */
  evidenceAgeMs: number | null;
  /** The agent's trust score and tier; null when it has none yet. */
  score?: number | null;
  tier?: TrustTier | null;
}

/** Why a rule matched, in words, for the card ("why was the route tightened?"). */
export function matchReasons(match: Policy['routing'][number]['match'], input: RouteInput): string[] {
  const out: string[] = [];
  if (match.action !== undefined) out.push(`action ${input.action} matches ${match.action}`);
  if (match.context?.amountOver !== undefined) out.push(typeof input.context.amount === 'number' ? `amount ${input.context.amount} over ${match.context.amountOver}` : `no amount given (rule is for amounts over ${match.context.amountOver})`);
  if (match.riskTier !== undefined) out.push(`risk tier ${input.riskTier}`);
  if (match.evidenceOlderThan !== undefined) out.push(input.evidenceAgeMs === null ? 'no evaluation evidence' : `evidence older than ${match.evidenceOlderThan.text}`);
  if (match.tierBelow !== undefined) out.push(input.tier ? `tier ${input.tier} below ${match.tierBelow}` : 'no trust tier yet');
  if (match.scoreBelow !== undefined) out.push(typeof input.score === 'number' ? `score ${input.score} below ${match.scoreBelow}` : 'no trust score yet');
  return out;
}

/** Does a rule's `match` hold for this request? Missing facts count against the requester (the rule applies). */
export function ruleMatches(match: Policy['routing'][number]['match'], input: RouteInput): boolean {
  if (match.action !== undefined && !globMatches(match.action, input.action)) return false;
  const amountOver = match.context?.amountOver;
  if (amountOver !== undefined) {
    const amount = input.context.amount;
    // No amount given: we cannot tell it is small, so the rule applies.
    if (typeof amount === 'number' && amount <= amountOver) return false;
  }
  if (match.riskTier !== undefined && !match.riskTier.includes(input.riskTier)) return false;
  if (match.evidenceOlderThan !== undefined && input.evidenceAgeMs !== null && input.evidenceAgeMs <= match.evidenceOlderThan.ms) return false;
  // Unknown trust tightens rather than loosens: no score yet counts as below.
  if (match.tierBelow !== undefined && input.tier && TRUST_TIERS.indexOf(input.tier) >= TRUST_TIERS.indexOf(match.tierBelow)) return false;
  if (match.scoreBelow !== undefined && typeof input.score === 'number' && input.score >= match.scoreBelow) return false;
  return true;
}

/**
 * The route for a request, or null when no rule with approvers matches. `excluded` people (the
 * requester, the agent's owner) never count toward a requirement: separation of duties.
 */
export function computeRoute(policy: Policy, input: RouteInput, excluded: (p: Person) => boolean): RouteSnapshot | null {
  const matching = policy.routing.filter((r) => ruleMatches(r.match, input));
  const base = matching.find((r) => r.approvers.length > 0);
  if (!base) return null;
  const people = policyPeople(policy).filter((p) => !excluded(p));
  const peopleIn = (roles: string[]) => people.filter((p) => p.roles.some((r) => roles.includes(r))).map((p) => p.key);
  const requirements: RouteRequirement[] = [{ ruleId: base.id, roles: base.approvers, people: peopleIn(base.approvers), count: base.quorum }];
  for (const rule of matching) {
    if (rule.addApprovers.length === 0) continue;
    requirements.push({ ruleId: rule.id, roles: rule.addApprovers, people: peopleIn(rule.addApprovers), count: rule.approvers.length ? 1 : rule.quorum });
  }
  const involved = new Set([...requirements.flatMap((r) => r.people), ...peopleIn(base.escalateTo)]);
  return {
    ruleId: base.id,
    matched: matching.map((r) => r.id),
    why: Object.fromEntries(matching.map((r) => [r.id, matchReasons(r.match, input)])),
    trust: { score: input.score ?? null, tier: input.tier ?? null, evidenceAgeMs: input.evidenceAgeMs },
    requirements,
    people: Object.fromEntries(people.filter((p) => involved.has(p.key)).map((p) => [p.key, p])),
    remindAfterMs: base.remindAfter?.ms ?? null,
    escalateAfterMs: base.escalateAfter?.ms ?? null,
    escalateTo: base.escalateTo,
    expireAfterMs: base.expireAfter?.ms ?? DEFAULT_EXPIRE_AFTER_MS,
    grantForMs: base.grantFor?.ms ?? null,
    channel: base.channel ?? null,
  };
}

/** The escalated route: the escalation roles' people may now fill the main requirement. */
export function escalate(route: RouteSnapshot, escalatePeople: string[]): RouteSnapshot {
  const [main, ...rest] = route.requirements;
  if (!main) return route;
  return { ...route, requirements: [{ ...main, people: [...new Set([...main.people, ...escalatePeople])] }, ...rest] };
}

/**
 * How many requirement slots the approvals fill, each person filling at most one slot (a bipartite
 * matching, by augmenting paths: routes are small).
 */
export function filledSlots(route: RouteSnapshot, approvers: readonly string[]): number {
  const slots: string[][] = route.requirements.flatMap((r) => Array.from({ length: r.count }, () => r.people));
  const slotOf = new Map<number, string>();
  const tryAssign = (person: string, seen: Set<number>): boolean => {
    for (let i = 0; i < slots.length; i++) {
      if (seen.has(i) || !slots[i]!.includes(person)) continue;
      seen.add(i);
      const holder = slotOf.get(i);
      if (holder === undefined || tryAssign(holder, seen)) {
        slotOf.set(i, person);
        return true;
      }
    }
    return false;
  };
  for (const person of new Set(approvers)) tryAssign(person, new Set());
  return slotOf.size;
}

export const totalSlots = (route: RouteSnapshot) => route.requirements.reduce((n, r) => n + r.count, 0);
export const isApproved = (route: RouteSnapshot, approvers: readonly string[]) => filledSlots(route, approvers) === totalSlots(route);
/** Can the route still be approved by the people on it (e.g. after excluding the owner)? */
export const isReachable = (route: RouteSnapshot) => isApproved(route, Object.keys(route.people).filter((k) => route.requirements.some((r) => r.people.includes(k))));
