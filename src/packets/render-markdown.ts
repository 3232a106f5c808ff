import type { EvidenceAggregate, TrustPacket } from './packet.js';
import { day, pageOne, pct, type Line } from './page-one.js';

/**
 * Markdown rendering of a trust packet. A pure function of the packet: every time shown comes from
 * the packet itself (never the clock), so the same packet always renders to the same document.
 * All text that came from users or agents goes through `md()` / `mdCell()`.
 */

// ---- formatting shared with the PDF renderer -------------------------------------------------

/** `2025-06-01T12:30:00.000Z` → `2025-06-01 12:30 UTC`; unparsable input is returned as given. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) return iso;
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Minutes → `45 min`, `2 h 5 min`, `3 d 4 h`. */
export function formatMinutes(minutes: number | null | undefined): string {
  if (minutes === null || minutes === undefined || !Number.isFinite(minutes)) return '—';
  const m = Math.max(0, Math.round(minutes));
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

export function formatAgeDays(days: number): string {
  if (!Number.isFinite(days)) return '—';
  const d = Math.max(0, Math.floor(days));
  return d === 1 ? '1 day' : `${d} days`;
}

export function formatSigned(n: number | null): string {
  if (n === null || !Number.isFinite(n)) return '—';
  return n > 0 ? `+${n}` : String(n);
}

/** Minutes an incident has lasted: its recorded duration, or open time up to `asOf`. */
export function incidentMinutes(item: TrustPacket['incidents']['items'][number], asOf: string): number | null {
  if (item.durationMinutes !== null) return item.durationMinutes;
  const opened = Date.parse(item.openedAt);
  const end = Date.parse(item.closedAt ?? asOf);
  return Number.isFinite(opened) && Number.isFinite(end) && end >= opened ? Math.round((end - opened) / 60_000) : null;
}

/** The warning both renderings put at the top of the evidence section (contains "stale evidence"). */
export function staleEvidenceWarning(packet: TrustPacket): string | null {
  const { staleCount, total, staleAfterDays } = packet.evidence;
  if (staleCount <= 0) return null;
  const verb = staleCount === 1 ? 'is' : 'are';
  return `Warning: this packet relies on stale evidence. ${staleCount} of ${total} evidence items ${verb} past the ${staleAfterDays}-day staleness limit; conclusions drawn from ${staleCount === 1 ? 'it' : 'them'} may no longer hold.`;
}

export function scoreHistoryStats(packet: TrustPacket): { count: number; first?: { at: string; score: number }; last?: { at: string; score: number }; min?: number; max?: number } {
  const pts = packet.scoreHistory.points;
  if (pts.length === 0) return { count: 0 };
  const scores = pts.map((p) => p.score);
  return { count: pts.length, first: pts[0], last: pts[pts.length - 1], min: Math.min(...scores), max: Math.max(...scores) };
}

// ---- Markdown escaping ------------------------------------------------------------------------

/**
 * Escape user text for inline Markdown: no line breaks, backslash-escaped punctuation that could
 * start emphasis, code, links, HTML, tables or strikethrough, and block markers at the start.
 */
export function md(text: string | null | undefined): string {
  if (text === null || text === undefined) return '';
  let s = Array.from(String(text))
    .filter((c) => {
      const cp = c.codePointAt(0) ?? 0;
      return (cp >= 0x20 && cp !== 0x7f) || cp === 0x09 || cp === 0x0a || cp === 0x0d;
    })
    .join('')
    .replace(/\s*[\r\n]+\s*/g, ' ')
    .replace(/[\\`*_{}[\]<>|~!#]/g, (c) => `\\${c}`)
    .replace(/&(?=#?[a-z0-9]+;)/gi, '\\&');
  // Block markers only matter at the start of a line: list bullets, ordered lists, headings, quotes.
  s = s.replace(/^(\s*)([-+=])/, '$1\\$2').replace(/^(\s*\d+)([.)])/, '$1\\$2');
  return s;
}

/** `md()` for a table cell (pipes are already escaped; empty cells get a dash). */
function mdCell(text: string | null | undefined): string {
  const s = md(text);
  return s === '' ? '—' : s;
}

/** Inline code for identifiers and hashes; escaped text instead when a backtick or a pipe (tables) is inside. */
function code(text: string): string {
  const clean = text.replace(/[\r\n]+/g, ' ');
  return clean === '' ? '—' : /[`|]/.test(clean) ? md(clean) : `\`${clean}\``;
}

/** An autolink for http(s) URLs without characters that would break it; otherwise escaped text. */
function link(url: string | null): string {
  if (!url) return '—';
  return /^https?:\/\/[^\s<>`|\\]+$/i.test(url) ? `<${url}>` : md(url);
}

function asOf(iso: string): string {
  return `_As of ${md(formatTime(iso))}_`;
}

// ---- document --------------------------------------------------------------------------------

function lineMd(line: Line): string {
  const text = md(line.text);
  return line.note ? `  _${text}_` : `- ${line.alert ? `**${text}**` : text}`;
}

function aggregateTable(rows: EvidenceAggregate[], head: string, label: (a: EvidenceAggregate) => string): string[] {
  if (rows.length === 0) return ['None.', ''];
  const out = [`| ${head} | Items | Pass rate | Oldest | Newest | Freshness | Past the limit | Last failure |`, '|---|---|---|---|---|---|---|---|'];
  for (const a of rows) {
    out.push(`| ${mdCell(label(a))} | ${a.count} | ${pct(a.passRate)} | ${day(a.oldest)} | ${day(a.newest)} | ${a.freshness === 'stale' ? '**STALE**' : a.freshness} | ${a.staleCount} | ${day(a.lastFailure)} |`);
  }
  out.push('');
  return out;
}

export function renderPacketMarkdown(packet: TrustPacket): string {
  const out: string[] = [];
  const push = (...lines: string[]): void => {
    out.push(...lines);
  };
  const { agent, summary } = packet;
  const one = pageOne(packet);

  push(`# Trust packet: ${md(agent.name)}`, '');
  push(`- **Agent:** ${md(agent.name)} (${code(agent.id)}), owner ${md(agent.owner)}`);
  push(`- **Risk tier:** ${md(agent.riskTier)}; **status:** ${md(agent.status)}`);
  push(`- **Packet:** ${code(packet.id)} (version ${packet.version}), generated ${md(formatTime(packet.generatedAt))} for ${md(packet.requestedBy)}`);
  if (packet.audience) push(`- **Audience:** ${md(packet.audience)}`);
  if (packet.workflow) push(`- **Workflow:** ${md(packet.workflow)}`);
  push('');
  if (one.scope) push(one.scope.alert ? `**${md(one.scope.text)}**` : `_${md(one.scope.text)}_`, '');
  push(`> ${summary.verdictLevel === 'ok' ? '' : summary.verdictLevel === 'alert' ? '⛔ ' : '⚠️ '}**${md(summary.verdict)}**`, '');

  // Page one: the three questions, then the score.
  push('## The three questions', '', asOf(summary.asOf), '');
  for (const q of one.questions) {
    push(`### ${md(q.title.replace(/^(\d)\s+/, '$1. '))}`, '');
    for (const line of q.lines) push(lineMd(line));
    push('');
  }
  push(`**${md(one.score.text)}**`, '');

  // Summary
  push('## Summary', '', asOf(summary.asOf), '');
  push('| Score | Tier | 30-day change | Trend | Newest evidence | Stale items |', '|---|---|---|---|---|---|');
  push(`| ${summary.score === null ? 'no score' : String(summary.score)} | ${mdCell(summary.tier ?? 'none')} | ${formatSigned(summary.change30d)} | ${summary.trend} | ${summary.evidence === 'stale' ? '**STALE**' : summary.evidence} | ${packet.evidence.staleCount} of ${packet.evidence.total} |`, '');
  if (summary.facts.length) {
    push('Findings, worst first:', '');
    for (const f of summary.facts) push(`- ${md(`${agent.name} ${f}`)}`);
    push('');
  }

  // Pacts
  push('## Pacts', '', asOf(packet.pacts.asOf), '');
  if (packet.pacts.items.length === 0) push('No pacts are recorded for this agent.', '');
  for (const pact of packet.pacts.items) {
    push(`### ${md(pact.title)}`, '');
    push(`- **Pact:** ${code(pact.id)}; **severity:** ${md(pact.severity)}`);
    push(`- **Verification:** ${md(pact.verification)}`);
    const result = pact.lastResult === null ? 'never verified' : pact.lastResult === 'failed' ? '**FAILED**' : 'passed';
    const when = pact.lastVerified ? ` on ${md(formatTime(pact.lastVerified))}` : '';
    const fresh = pact.freshness === 'stale' ? '**STALE**' : pact.freshness;
    push(`- **Latest verification:** ${result}${when} (evidence ${fresh})`);
    push(`- **Record:** ${pact.evaluations} checks, ${pct(pact.passRate)}; last failure ${day(pact.lastFailure)}`);
    if (pact.clauses.length > 0) {
      push('- **Clauses:**');
      for (const clause of pact.clauses) push(`  - ${md(clause)}`);
    }
    push('');
  }

  // Evidence
  const ev = packet.evidence;
  push('## Evidence', '', asOf(ev.asOf), '');
  const warning = staleEvidenceWarning(packet);
  if (warning) push(`> ⚠️ **${md(warning)}**`, '');
  push(ev.total === 0 ? 'No evidence is recorded for this agent.' : `${ev.total} evaluations from ${md(formatTime(ev.oldest))} to ${md(formatTime(ev.newest))}.`, '');
  push('### By dimension', '', ...aggregateTable(ev.byDimension, 'Dimension', (a) => a.key));
  push('### By pact', '', ...aggregateTable(ev.byPact, 'Pact', (a) => (a.title && a.title !== a.key ? `${a.title} (${a.key})` : a.key)));

  // Score history
  const hist = scoreHistoryStats(packet);
  push('## Score history', '', asOf(packet.scoreHistory.asOf), '');
  if (hist.count === 0 || !hist.first || !hist.last) {
    push(`No score in the last ${packet.scoreHistory.days} days.`, '');
  } else {
    push(`${hist.count} daily scores from ${md(formatTime(hist.first.at))} (${hist.first.score}) to ${md(formatTime(hist.last.at))} (${hist.last.score}); low ${hist.min}, high ${hist.max}. Each day's score is the live formula replayed over the evidence observed up to that day; an external score stands from its own time on; the last point is the score in force now.`, '');
  }

  // Runtime controls
  const rc = packet.runtimeControls;
  push('## Runtime controls', '', asOf(rc.asOf), '', `**Status:** ${md(rc.status)}`, '');
  push(packet.scope && !packet.scope.missing ? `### Grants the workflow ${md(packet.scope.workflow)} touches` : '### Grants', '');
  if (rc.grants.length === 0) push('No grants.', '');
  else {
    push('| Scope | State | Constraints | Kept in containment |', '|---|---|---|---|');
    for (const g of rc.grants) {
      const constraints = Object.keys(g.constraints).length === 0 ? '—' : md(JSON.stringify(g.constraints));
      push(`| ${code(g.scope)} | ${mdCell(g.state)} | ${constraints} | ${g.keepInContainment ? 'yes' : 'no'} |`);
    }
    push('');
  }
  push('### Actions that need approval', '');
  if (rc.needsApproval.length === 0) push('None.', '');
  else {
    for (const r of rc.needsApproval) {
      const approvers = r.approvers.length ? r.approvers.map((a) => md(a)).join(', ') : 'no approvers listed';
      push(`- ${code(r.ruleId)}: ${r.action ? md(r.action) : 'any action'}; quorum ${r.quorum} of ${approvers}`);
    }
    push('');
  }
  push('### Routing that tightens when the proof weakens', '');
  if (rc.tightens.length === 0) push('None.', '');
  else {
    for (const t of rc.tightens) push(`- ${code(t.ruleId)}: when ${md(t.condition)}${t.action ? ` for ${md(t.action)}` : ''}: ${md(t.effect)}${t.inForceNow ? ' **(in force now)**' : ''}`);
    push('');
  }
  push('### Active containment actions', '');
  if (rc.activeActions.length === 0) push('None.', '');
  else {
    for (const a of rc.activeActions) {
      push(`- **${md(a.kind)}** by ${md(a.actor)} since ${md(formatTime(a.since))}${a.until ? ` until ${md(formatTime(a.until))}` : ' (no end set)'}: ${md(a.reason)}`);
    }
    push('');
  }

  // Consequence rules
  push('## Consequence rules', '', asOf(packet.consequences.asOf), '');
  if (packet.consequences.rules.length === 0) push('The policy has no consequence rules.', '');
  else {
    for (const r of packet.consequences.rules) push(`- ${code(r.ruleId)}: if ${md(r.when)}, then ${md(r.effect)}${r.applies ? '' : ' _(does not change this agent)_'}${r.conditionHoldsNow ? ' **(its condition holds now)**' : ''}`);
    push('');
  }

  // Incidents
  push('## Incidents', '', asOf(packet.incidents.asOf), '');
  if (packet.incidents.items.length === 0) push('No incidents.', '');
  for (const inc of packet.incidents.items) {
    const minutes = incidentMinutes(inc, packet.incidents.asOf);
    const state = inc.closedAt ? `closed ${md(formatTime(inc.closedAt))}, lasted ${formatMinutes(minutes)}` : `**still open**, ${formatMinutes(minutes)} so far`;
    push(`### Incident ${code(inc.id)}`, '', `Opened ${md(formatTime(inc.openedAt))}; ${state}.`, '');
    for (const s of inc.steps) push(`- ${md(formatTime(s.at))} — **${md(s.kind)}**${s.breakGlass ? ' **(BREAK-GLASS: no second person)**' : ''} by ${md(s.actor)}: ${md(s.reason)}`);
    if (inc.steps.length > 0) push('');
  }

  // Approvals
  const ap = packet.approvals;
  push('## Approvals', '', asOf(ap.asOf), '', `Decisions in the last ${ap.days} days:`, '');
  push('| Approved | Denied | Expired | Cancelled | Pending |', '|---|---|---|---|---|');
  push(`| ${ap.counts.approved} | ${ap.counts.denied} | ${ap.counts.expired} | ${ap.counts.cancelled} | ${ap.counts.pending} |`, '');
  push(`Median time to decision: ${ap.medianMinutesToDecision === null ? 'no decisions' : formatMinutes(ap.medianMinutesToDecision)}.`, '');

  // Audit integrity
  const au = packet.auditIntegrity;
  push('## Audit integrity', '', asOf(au.asOf), '');
  push(`- **Verification:** ${au.verified ? 'verified — the hash chain is intact' : '**FAILED** — the hash chain is broken'}`);
  push(`- **Entries checked:** ${au.entries}`);
  push(`- **Head:** sequence ${code(au.headSeq)}, hash ${code(au.headHash)}`);
  if (au.firstBroken) push(`- **First broken entry:** sequence ${code(au.firstBroken.seq)}: ${md(au.firstBroken.problem)}`);
  push('');

  // Appendix: raw evidence
  push('## Appendix: evidence items', '', asOf(ev.asOf), '');
  if (ev.items.length === 0) push('No evidence is recorded for this agent.', '');
  else {
    push(`The ${ev.items.length} most recent of ${ev.total} evaluations, newest first.`, '');
    push('| Freshness | Observed | Age | Dimension | Result | Pact | Source | Link |', '|---|---|---|---|---|---|---|---|');
    for (const e of ev.items) {
      push(`| ${e.stale ? '**STALE**' : 'current'} | ${md(formatTime(e.observedAt))} | ${formatAgeDays(e.ageDays)} | ${mdCell(e.dimension)} | ${mdCell(e.result)} | ${e.pactId ? code(e.pactId) : '—'} | ${mdCell(e.source)} | ${link(e.evidenceUrl)} |`);
    }
    push('');
    if (ev.omitted > 0) push(`_… ${ev.omitted} more not shown._`, '');
  }

  return `${out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}
