import type { Freshness } from '../domain/trust-score.js';
import type { VerdictLevel } from './packet.js';

/**
 * The verdict of a trust packet: one sentence a reviewer can quote, led by the worst fact. A pure
 * function of the facts the packet states, so the sentence can never disagree with the pages
 * below it (it never calls evidence "fresh" when any item is stale, never hides a failing pact).
 */

export interface VerdictSituation {
  name: string;
  score: number | null;
  tier: string | null;
  /** active | narrowed | contained | revoked | decommissioned */
  status: string;
  evidence: {
    total: number;
    staleCount: number;
    staleAfterDays: number;
    /** Freshness and age of the newest item (none / null without evidence). */
    newest: Freshness;
    newestAgeDays: number | null;
    /** Dimensions whose newest item is stale (nothing recent proves them). */
    staleDimensions: string[];
  };
  pacts: { title: string; severity: string; lastResult: 'passed' | 'failed' | null; ageDays: number | null; freshness: Freshness }[];
  openIncidents: { openedAt: string }[];
  revokedGrants: string[];
  auditBroken: { seq: string } | null;
}

export interface Verdict {
  sentence: string;
  level: VerdictLevel;
  /** Every finding, worst first. */
  facts: string[];
}

interface Fact {
  rank: number;
  level: Exclude<VerdictLevel, 'ok'>;
  text: string;
}

const quote = (s: string) => `“${s}”`;
const days = (n: number | null) => (n === null ? 'at an unknown time' : n === 0 ? 'today' : n === 1 ? '1 day ago' : `${n} days ago`);
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const list = (items: string[], max = 3) => (items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`);
const day = (iso: string) => iso.slice(0, 10);

/** The findings of a situation, worst first (ties keep the order they are listed in). */
export function verdictFacts(s: VerdictSituation): Fact[] {
  const facts: Fact[] = [];
  const ev = s.evidence;
  if (s.status === 'revoked' || s.status === 'decommissioned') {
    facts.push({ rank: 10, level: 'alert', text: s.status === 'revoked' ? 'is revoked: every grant is withdrawn (kill switch)' : 'is decommissioned: every decision about it is a deny' });
  }
  if (s.auditBroken) {
    facts.push({ rank: 20, level: 'alert', text: `has a broken audit chain (first broken entry ${s.auditBroken.seq}): the record this packet is built from cannot be verified` });
  }
  const failing = (sev: (x: string) => boolean) => s.pacts.filter((p) => sev(p.severity) && p.lastResult === 'failed');
  const criticalFailing = failing((x) => x === 'critical');
  if (criticalFailing.length === 1) {
    const p = criticalFailing[0]!;
    facts.push({ rank: 30, level: 'alert', text: `FAILED its critical pact ${quote(p.title)} at the latest verification (${days(p.ageDays)})` });
  } else if (criticalFailing.length > 1) {
    facts.push({ rank: 30, level: 'alert', text: `FAILED ${criticalFailing.length} critical pacts at their latest verification (${list(criticalFailing.map((p) => quote(p.title)))})` });
  }
  const criticalUnverified = s.pacts.filter((p) => p.severity === 'critical' && p.lastResult === null);
  if (criticalUnverified.length) {
    facts.push({ rank: 35, level: 'alert', text: `has never verified its critical ${criticalUnverified.length === 1 ? 'pact' : 'pacts'} ${list(criticalUnverified.map((p) => quote(p.title)))}` });
  }
  if (ev.total > 0) {
    const stalePacts = s.pacts.filter((p) => p.lastResult !== null && p.freshness === 'stale');
    const window = `the ${ev.staleAfterDays}-day staleness limit`;
    if (ev.newest === 'stale') {
      facts.push({ rank: 40, level: 'alert', text: `has only stale evidence: the newest of ${plural(ev.total, 'item')} is ${ev.newestAgeDays} days old, past ${window}` });
    } else if (ev.staleDimensions.length || stalePacts.length) {
      const parts: string[] = [];
      if (ev.staleDimensions.length) parts.push(`${list(ev.staleDimensions)} ${ev.staleDimensions.length === 1 ? 'has' : 'have'} no evidence newer than ${ev.staleAfterDays} days`);
      if (stalePacts.length) parts.push(`${list(stalePacts.map((p) => quote(p.title)))} ${stalePacts.length === 1 ? 'was' : 'were'} last verified over ${ev.staleAfterDays} days ago`);
      facts.push({ rank: 40, level: 'alert', text: `has stale evidence: ${ev.staleCount} of ${ev.total} items are past ${window}, and ${parts.join('; ')}` });
    } else if (ev.staleCount > 0) {
      facts.push({ rank: 90, level: 'caution', text: `has stale evidence: ${ev.staleCount} of ${ev.total} items are past ${window} (every dimension also has newer evidence)` });
    }
  }
  if (s.openIncidents.length) {
    const first = [...s.openIncidents].sort((a, b) => a.openedAt.localeCompare(b.openedAt))[0]!;
    facts.push({
      rank: 50,
      level: 'alert',
      text: s.openIncidents.length === 1 ? `is under an open incident since ${day(first.openedAt)} (${s.status})` : `is under ${s.openIncidents.length} open incidents, the first since ${day(first.openedAt)} (${s.status})`,
    });
  }
  for (const p of failing((x) => x === 'high')) facts.push({ rank: 55, level: 'alert', text: `FAILED its high-severity pact ${quote(p.title)} at the latest verification (${days(p.ageDays)})` });
  if (ev.total === 0) facts.push({ rank: 60, level: 'alert', text: 'has no evaluation evidence at all: nothing proves what it promised' });
  if (s.revokedGrants.length) facts.push({ rank: 70, level: 'caution', text: `has ${plural(s.revokedGrants.length, 'revoked grant')} (${list(s.revokedGrants)})` });
  for (const p of failing((x) => x !== 'critical' && x !== 'high')) facts.push({ rank: 80, level: 'caution', text: `failed its ${p.severity}-severity pact ${quote(p.title)} at the latest verification` });
  if ((s.status === 'contained' || s.status === 'narrowed') && !s.openIncidents.length) facts.push({ rank: 95, level: 'caution', text: `is ${s.status}` });
  if (ev.newest === 'ageing' && !facts.some((f) => f.rank === 40)) facts.push({ rank: 100, level: 'caution', text: `has ageing evidence: the newest item is ${ev.newestAgeDays} days old` });
  return facts.sort((a, b) => a.rank - b.rank);
}

/** The verdict sentence: at most the three worst facts, then the score in that light. */
export function verdictOf(s: VerdictSituation): Verdict {
  const facts = verdictFacts(s);
  const scoreText = s.score === null ? null : `${s.score} (${s.tier ?? 'no tier'})`;
  if (facts.length === 0) {
    const pacts = s.pacts.length === 0 ? 'it has no pacts to verify' : s.pacts.length === 1 ? 'its pact passed its latest verification' : `all ${s.pacts.length} pacts passed their latest verification`;
    const score = scoreText === null ? 'has no score yet' : `scores ${scoreText}`;
    return { sentence: `${s.name} ${score} on fresh evidence: ${pacts}, and no incident is open.`, level: 'ok', facts: [] };
  }
  const level: VerdictLevel = facts.some((f) => f.level === 'alert') ? 'alert' : 'caution';
  const shown = facts.slice(0, 3).map((f) => f.text);
  const more = facts.length > 3 ? ` (and ${plural(facts.length - 3, 'more finding')} below)` : '';
  const head = shown.length === 1 ? shown[0]! : `${shown.slice(0, -1).join('; ')}; and ${shown.at(-1)}`;
  const score =
    scoreText === null ? 'It has no trust score yet.' : level === 'alert' ? `Its score of ${scoreText} should not be relied on until this is resolved.` : `It scores ${scoreText}.`;
  return { sentence: `${s.name} ${head}${more}. ${score}`, level, facts: facts.map((f) => f.text) };
}
