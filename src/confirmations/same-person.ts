import { isPerson, policyPeople, type Person } from '../domain/approval-route.js';
import type { Policy } from '../policy/policy.schema.js';
import type { ChatIdentity } from '../chat/authorization.js';

/**
 * Who asked for a confirmation, kept in a form a later click can be compared with. `api` is an
 * API token: not a person, so nobody is "the same person" as it.
 */
export interface Requester {
  platform: 'slack' | 'teams' | 'api';
  userId: string;
  /** Emails the platform resolved for them, lower-cased. */
  emails: string[];
  /** The policy member key (see policyPeople) when they are in the policy. */
  personKey: string | null;
}

const identityOf = (who: { platform: string; userId: string }) =>
  who.platform === 'slack' ? { slack: who.userId } : who.platform === 'teams' ? { teams: who.userId } : {};

/** Every policy member entry this chat user is: by their platform id, or by any email resolved for them. */
export function policyPersonsOf(people: Person[], who: { platform: string; userId: string; emails: string[] }): Person[] {
  if (who.platform === 'api') return [];
  return people.filter((p) => isPerson(p, identityOf(who)) || who.emails.some((e) => isPerson(p, { email: e })));
}

export function requesterOf(policy: Policy, who: ChatIdentity): Requester {
  const emails = [...new Set(who.emails.map((e) => e.toLowerCase()))];
  return { platform: who.platform, userId: who.userId, emails, personKey: policyPersonsOf(policyPeople(policy), { ...who, emails })[0]?.key ?? null };
}

export function apiRequester(tokenName: string): Requester {
  return { platform: 'api', userId: tokenName, emails: [], personKey: null };
}

/**
 * Is this chat user the person who asked? A security decision: people, not actor strings. The same
 * person may ask in Slack and click in Teams, so they match by the same platform id, by a shared
 * resolved email, or by being the same policy member (one member entry, or entries merged because
 * they share an email, Slack id or Teams id) under the policy as it was or as it is now.
 */
export function samePerson(policy: Policy, requester: Requester, who: ChatIdentity): boolean {
  if (requester.platform === 'api') return false;
  const sameId = (a: string, b: string) => (requester.platform === 'teams' ? a.toLowerCase() === b.toLowerCase() : a === b);
  if (requester.platform === who.platform && sameId(requester.userId, who.userId)) return true;
  const emails = new Set(requester.emails.map((e) => e.toLowerCase()));
  if (who.emails.some((e) => emails.has(e.toLowerCase()))) return true;
  const people = policyPeople(policy);
  const clicker = policyPersonsOf(people, who);
  if (clicker.length === 0) return false;
  if (requester.personKey !== null && clicker.some((p) => p.key === requester.personKey)) return true;
  // A resolved email can tie two member entries the policy lists separately: any one shared is enough.
  const asked = policyPersonsOf(people, requester);
  return clicker.some((p) => asked.includes(p));
}

/** A requester from a stored `requested_by` actor string (`slack:U…`), for rows made before 0008. */
export function requesterFromActor(actor: string): Requester {
  const i = actor.indexOf(':');
  const platform = actor.slice(0, i);
  const userId = actor.slice(i + 1);
  return platform === 'slack' || platform === 'teams' ? { platform, userId, emails: [], personKey: null } : { platform: 'api', userId: actor, emails: [], personKey: null };
}
