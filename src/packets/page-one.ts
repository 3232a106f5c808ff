import type { EvidenceAggregate, TrustPacket } from './packet.js';

/**
 * Page one of a trust packet: the three questions a CISO asks ("What did it promise? Is the proof
 * current? What changes when the proof weakens?"), each answered in a few lines a person can check
 * against the pages after it, then the score. Both renderings (PDF and Markdown) print these lines.
 */

export interface Line {
  text: string;
  /** Printed in red: a fact that weakens trust. */
  alert?: boolean;
  /** Printed smaller and muted: a pointer to the detail pages. */
  note?: boolean;
}

export interface PageOne {
  scope: Line | null;
  questions: { title: string; lines: Line[] }[];
  score: Line;
}

const DAY = 86_400_000;
const SEVERITY_ORDER: Record<string, number> = { critical: 0, high: 1, medium: 2, low: 3 };
const MAX_PACTS = 4;
const MAX_DIMENSIONS = 4;
const MAX_RULES = 3;

export const day = (iso: string | null | undefined): string => (iso ? iso.slice(0, 10) : '—');
export const pct = (rate: number | null): string => (rate === null ? 'not graded' : `${Math.round(rate * 1000) / 10}% passed`);
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const ageDays = (asOf: string, at: string | null) => (at ? Math.max(0, Math.floor((Date.parse(asOf) - Date.parse(at)) / DAY)) : null);
const ago = (d: number | null) => (d === null ? 'never' : d === 0 ? 'today' : d === 1 ? '1 day ago' : `${d} days ago`);
const freshWord = (f: string) => (f === 'stale' ? 'STALE' : f);

export function formatSignedChange(n: number | null): string {
  if (n === null) return 'no score 30 days ago';
  return n > 0 ? `+${n}` : String(n);
}

function aggregateLine(a: EvidenceAggregate, asOf: string, label: string): Line {
  const failure = a.lastFailure ? `; last failure ${day(a.lastFailure)}` : '; no failure';
  return {
    text: `${label}: ${plural(a.count, 'item')}, ${pct(a.passRate)}, ${day(a.oldest)} to ${day(a.newest)} (newest ${ago(ageDays(asOf, a.newest))}, ${freshWord(a.freshness)})${failure}`,
    alert: a.freshness === 'stale',
  };
}

export function pageOne(p: TrustPacket): PageOne {
  // 1. What did it promise?
  const pacts = [...p.pacts.items].sort((a, b) => (SEVERITY_ORDER[a.severity] ?? 9) - (SEVERITY_ORDER[b.severity] ?? 9) || a.title.localeCompare(b.title));
  const promised: Line[] = pacts.slice(0, MAX_PACTS).map((x) => {
    const result =
      x.lastResult === null ? 'NEVER VERIFIED' : `${x.lastResult === 'failed' ? 'FAILED' : 'passed'} at the latest verification, ${ago(x.ageDays)} (${day(x.lastVerified)}${x.freshness === 'stale' ? ', STALE' : ''})`;
    const record = x.evaluations ? `; ${plural(x.evaluations, 'check')}, ${pct(x.passRate)}${x.lastFailure ? `, last failure ${day(x.lastFailure)}` : ''}` : '';
    return { text: `${x.severity.toUpperCase()}  ${x.title}: ${result}${record}`, alert: x.lastResult !== 'passed' || x.freshness === 'stale' };
  });
  if (pacts.length === 0) promised.push({ text: 'No pacts are recorded: the agent has promised nothing that can be checked.', alert: true });
  if (pacts.length > MAX_PACTS) promised.push({ text: `${pacts.length - MAX_PACTS} more pacts in "Pacts" below.`, note: true });

  // 2. Is the proof current?
  const ev = p.evidence;
  const proof: Line[] = [];
  if (ev.total === 0) proof.push({ text: 'No evaluation evidence at all: nothing proves what it promised.', alert: true });
  else {
    const share = Math.round((100 * ev.staleCount) / ev.total);
    proof.push({
      text: `${plural(ev.total, 'evaluation')} from ${day(ev.oldest)} to ${day(ev.newest)}; the newest is ${ago(ageDays(ev.asOf, ev.newest))}. ${
        ev.staleCount ? `${ev.staleCount} of ${ev.total} (${share}%) are past the ${ev.staleAfterDays}-day staleness limit.` : `None is older than ${ev.staleAfterDays} days.`
      }`,
      alert: ev.staleCount > 0,
    });
    const dims = [...ev.byDimension].sort((a, b) => (a.freshness === 'stale' ? 0 : 1) - (b.freshness === 'stale' ? 0 : 1) || a.key.localeCompare(b.key));
    for (const d of dims.slice(0, MAX_DIMENSIONS)) proof.push(aggregateLine(d, ev.asOf, `Dimension ${d.key}`));
    if (dims.length > MAX_DIMENSIONS) proof.push({ text: `${dims.length - MAX_DIMENSIONS} more dimensions in "Evidence" below.`, note: true });
    const pactFresh = ev.byPact.map((a) => `${a.title ?? a.key} newest ${day(a.newest)} (${freshWord(a.freshness)})`);
    if (pactFresh.length) proof.push({ text: `Per pact: ${pactFresh.slice(0, 3).join('; ')}${pactFresh.length > 3 ? `; ${pactFresh.length - 3} more` : ''}.`, alert: ev.byPact.some((a) => a.freshness === 'stale') });
  }

  // 3. What changes when the proof weakens?
  const rc = p.runtimeControls;
  const weakens: Line[] = [];
  const inForce = rc.grants.filter((g) => g.state === 'active').length;
  const open = p.incidents.items.filter((i) => i.closedAt === null);
  const since90 = Date.parse(p.incidents.asOf) - 90 * DAY;
  const recent = p.incidents.items.filter((i) => Date.parse(i.openedAt) >= since90);
  const incidentText = (i: TrustPacket['incidents']['items'][number]) => {
    const first = i.steps[0];
    const last = i.steps.at(-1);
    const opened = `${first ? `${first.kind} ` : 'opened '}${day(i.openedAt)}${first ? ` by ${first.actor}` : ''}`;
    if (!i.closedAt) return `${opened}, STILL OPEN`;
    const minutes = i.durationMinutes ?? 0;
    const lasted = minutes < 60 ? `${minutes} min` : minutes < 1440 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${Math.floor(minutes / 1440)} d`;
    return `${opened}, ${last && last !== first ? `${last.kind} ` : 'closed '}after ${lasted}`;
  };
  weakens.push({
    text: `Now: ${rc.status}; ${inForce} of ${plural(rc.grants.length, 'grant')} in force; ${open.length ? `${plural(open.length, 'OPEN INCIDENT')}` : 'no open incident'}. Last 90 days: ${
      recent.length ? `${plural(recent.length, 'incident')} (${recent.slice(0, 2).map(incidentText).join('; ')}${recent.length > 2 ? '; …' : ''})` : 'no incident'
    }.`,
    alert: open.length > 0 || rc.status !== 'active',
  });
  const applying = p.consequences.rules.filter((r) => r.applies);
  for (const r of applying.slice(0, MAX_RULES)) {
    weakens.push({ text: `If ${r.when}, then ${r.effect}${r.conditionHoldsNow ? ' (its condition holds now)' : ''}.`, alert: r.conditionHoldsNow });
  }
  const idle = p.consequences.rules.length - applying.length;
  if (applying.length === 0) weakens.push({ text: p.consequences.rules.length ? 'No consequence rule of the policy would change this agent.' : 'The policy has no consequence rules: weakening proof changes nothing by itself.', alert: true });
  else if (applying.length > MAX_RULES) weakens.push({ text: `${applying.length - MAX_RULES} more consequence rules below.`, note: true });
  for (const t of rc.tightens.slice(0, MAX_RULES)) {
    weakens.push({ text: `Approvals when ${t.condition}${t.action ? ` (${t.action})` : ''}: ${t.effect}${t.inForceNow ? ' (in force now)' : ''}.`, alert: t.inForceNow });
  }
  if (idle > 0 && applying.length > 0) weakens.push({ text: `${plural(idle, 'other consequence rule')} of the policy would not change this agent.`, note: true });

  const s = p.summary;
  const points = p.scoreHistory.points.length;
  const score: Line = {
    text: `Score ${s.score === null ? 'none yet' : `${s.score} (${s.tier})`} · 30-day change ${formatSignedChange(s.change30d)}${s.change30d === null ? '' : ` (trend ${s.trend})`} · ${plural(points, 'daily point')} from ${day(p.scoreHistory.from)}, replayed from the evidence of each day`,
  };

  let scope: Line | null = null;
  if (p.scope) {
    const sc = p.scope;
    scope = sc.missing
      ? { text: `Workflow ${sc.workflow} was asked for but is not in the policy any more: this packet is NOT scoped to it.`, alert: true }
      : {
          text: `Scoped to workflow ${sc.workflow} (${sc.actions.join(', ')}): ${sc.grants.inScope} of ${plural(sc.grants.total, 'grant')}, ${sc.routingRules.inScope} of ${plural(sc.routingRules.total, 'routing rule')} and ${sc.consequenceRules.inScope} of ${plural(sc.consequenceRules.total, 'consequence rule')} are the ones its actions touch.`,
        };
  }

  return {
    scope,
    questions: [
      { title: '1  What did it promise?', lines: promised },
      { title: '2  Is the proof current?', lines: proof },
      { title: '3  What changes when the proof weakens?', lines: weakens },
    ],
    score,
  };
}
