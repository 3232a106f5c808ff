import { randomBytes } from 'node:crypto';
import type { Agent } from '../domain/agent.js';
import type { ApprovalView } from '../approvals/approvals.service.js';
import type { IncidentSummary } from '../incidents/incidents.repository.js';
import type { AuditRow } from '../db/schema.js';
import type { ChatReply } from '../chat/reply.js';
import type { Span, Text } from '../notices/model.js';
import { html, path, raw, type Raw } from './html.js';

/**
 * The console's pages as pure functions of what they show: no database, no request. Every value
 * from a person or an agent goes through `html`'s escaping; the only `raw` fragments are ones built
 * here (and the score chart's SVG, which escapes its own text).
 */

export type NavItem = 'overview' | 'approvals' | 'incidents' | 'audit' | 'none';

/** What every page needs: who is signed in (for the header and sign-out form) and where we are. */
export interface PageFrame {
  title: string;
  nav: NavItem;
  person?: { label: string; roles: string[]; csrf: string };
  /** The element htmx refreshes every few seconds: the same URL, the `#live` part of it. */
  liveUrl?: string;
}

export const LIVE_REFRESH_SECONDS = 4;

export function layout(frame: PageFrame, body: Raw): Raw {
  const link = (item: NavItem, href: string, label: string) => html`<a href="${href}"${frame.nav === item ? raw(' aria-current="page"') : ''}>${label}</a>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="htmx-config" content='{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}'>
<title>${frame.title} · Armalo console</title>
<link rel="stylesheet" href="/console/static/console.css">
<link rel="icon" href="data:,">
<script src="/console/static/htmx.min.js" defer></script>
</head>
<body>
<header class="top">
  <span class="brand">Armalo console</span>
  ${frame.person
    ? html`<nav aria-label="Console">${link('overview', '/console', 'Overview')} ${link('approvals', '/console/approvals', 'Approvals')} ${link('incidents', '/console/incidents', 'Incidents')} ${link('audit', '/console/audit', 'Audit')}</nav>
  <span class="who">${frame.person.label}${frame.person.roles.length ? html` <span class="muted">(${frame.person.roles.join(', ')})</span>` : ''}
    <form method="post" action="/console/logout"><input type="hidden" name="csrf" value="${frame.person.csrf}"><button class="secondary" type="submit">Sign out</button></form>
    <form method="post" action="/console/logout"><input type="hidden" name="csrf" value="${frame.person.csrf}"><input type="hidden" name="everywhere" value="1"><button class="secondary" type="submit" title="End every console session you have open, on every device">Sign out everywhere</button></form></span>`
    : ''}
</header>
<main id="main">
<h1>${frame.title}</h1>
${body}
</main>
</body>
</html>`;
}

/** The part of a page htmx polls: the same URL, swapped in place by the element's id. */
export function live(url: string, body: Raw, id = 'live'): Raw {
  return html`<div id="${id}" hx-get="${url}" hx-trigger="every ${LIVE_REFRESH_SECONDS}s" hx-select="${`#${id}`}" hx-swap="outerHTML">${body}</div>`;
}

export const statusBadge = (status: string) => html`<span class="status status-${status.replace(/[^a-z_-]/g, '')}">${status}</span>`;

/** A hidden CSRF field and a fresh nonce (the idempotency key of a double-submitted form). */
export function formSecrets(csrf: string): Raw {
  return html`<input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="nonce" value="${randomBytes(12).toString('base64url')}">`;
}

export function renderSpan(s: Span): Raw {
  if (typeof s === 'string') return html`${s}`;
  if ('strong' in s) return html`<strong>${s.strong}</strong>`;
  if ('em' in s) return html`<em>${s.em}</em>`;
  if ('code' in s) return html`<code>${s.code}</code>`;
  // Links are URLs we built (never user input); still escaped as attribute text.
  if ('link' in s) return html`<a href="${s.link}">${s.label}</a>`;
  if ('actor' in s) return html`<code>${s.actor}</code>`;
  if ('command' in s) return html`<code>${s.command}</code>`;
  return html`<time>${typeof s.time === 'string' ? s.time : s.time.toISOString()}</time>`;
}

export const renderText = (t: Text | string): Raw => (typeof t === 'string' ? html`${t}` : html`${t.map(renderSpan)}`);

/** A chat command's answer as a banner (the console's actions answer as chat does). */
export function replyBanner(reply: ChatReply): Raw {
  const tone = reply.tone;
  return html`<div class="banner banner-${tone}" role="${tone === 'error' ? 'alert' : 'status'}"><strong>${renderText(reply.title)}</strong>
  ${reply.lines.length ? html`<ul>${reply.lines.map((l) => html`<li>${renderText(l)}</li>`)}</ul>` : ''}</div>`;
}

export function messagePage(frame: PageFrame, tone: ChatReply['tone'], message: string, next?: { href: string; label: string }): Raw {
  return layout(frame, html`<div class="banner banner-${tone}" role="${tone === 'error' ? 'alert' : 'status'}">${message}</div>${next ? html`<p><a href="${next.href}">${next.label}</a></p>` : ''}`);
}

// ---- sign-in ------------------------------------------------------------------------------

/** The page a sign-in link opens: one form, so link scanners and unfurlers (which GET) spend nothing. */
export function signInPage(token: string): Raw {
  return layout(
    { title: 'Sign in', nav: 'none' },
    html`<section class="card signin">
  <p>You are about to sign in to the Armalo console as the chat person this link was sent to. The session lasts 8 hours.</p>
  <form method="post" action="/console/login">
    <input type="hidden" name="t" value="${token}">
    <button type="submit">Sign in</button>
  </form>
</section>`,
  );
}

// ---- overview -----------------------------------------------------------------------------

export interface OverviewData {
  counts: Record<string, number>;
  agents: Agent[];
  openIncidents: IncidentSummary[];
  waiting: ApprovalView[];
  movers: { agentId: string; from: number; to: number }[];
}

export function overviewBody(d: OverviewData): Raw {
  const statuses = ['active', 'narrowed', 'contained', 'revoked'];
  return live(
    '/console',
    html`<div class="counts">${statuses.map((s) => html`<a href="/console?status=${s}"><b>${d.counts[s] ?? 0}</b>${statusBadge(s)}</a>`)}</div>
<h2>Approvals waiting on you (${d.waiting.length})</h2>
<section class="card">${approvalTable(d.waiting, { decide: false })}</section>
<h2>Open incidents (${d.openIncidents.length})</h2>
<section class="card">${incidentTable(d.openIncidents)}</section>
<h2>Score movers this week</h2>
<section class="card">${d.movers.length
      ? html`<table><thead><tr><th>Agent</th><th>7 days ago</th><th>Now</th><th>Change</th></tr></thead><tbody>${d.movers.map(
          (m) => html`<tr><td><a href="${path`/console/agents/${m.agentId}`}">${m.agentId}</a></td><td>${m.from}</td><td>${m.to}</td><td>${m.to - m.from > 0 ? '+' : ''}${m.to - m.from}</td></tr>`,
        )}</tbody></table>`
      : html`<p class="muted">No score changed this week.</p>`}</section>
<h2>Agents</h2>
<section class="card">${agentTable(d.agents)}</section>`,
  );
}

export function agentTable(agents: Agent[]): Raw {
  if (agents.length === 0) return html`<p class="muted">No agents.</p>`;
  return html`<table><thead><tr><th>Agent</th><th>Status</th><th class="opt">Owner</th><th class="opt">Risk</th><th class="opt">Grants</th></tr></thead><tbody>${agents.map(
    (a) => html`<tr><td><a href="${path`/console/agents/${a.id}`}">${a.name}</a> <code>${a.id}</code></td><td>${statusBadge(a.status)}</td><td class="opt">${a.owner}</td><td class="opt">${a.riskTier}</td><td class="opt">${a.grants.length}</td></tr>`,
  )}</tbody></table>`;
}

// ---- incidents ------------------------------------------------------------------------------

const minutes = (ms: number) => (ms < 3_600_000 ? `${Math.max(1, Math.round(ms / 60_000))} min` : ms < 172_800_000 ? `${(ms / 3_600_000).toFixed(1)} h` : `${Math.round(ms / 86_400_000)} d`);

export function durationOf(i: IncidentSummary, now: Date): string {
  return minutes((i.closedAt ? Date.parse(i.closedAt) : now.getTime()) - Date.parse(i.openedAt));
}

export function incidentTable(items: IncidentSummary[], now = new Date()): Raw {
  if (items.length === 0) return html`<p class="muted">No incidents.</p>`;
  return html`<table><thead><tr><th>Agent</th><th>Incident</th><th>Opened</th><th>Duration</th><th class="opt">Closed by</th><th class="opt">Steps</th></tr></thead><tbody>${items.map(
    (i) => html`<tr><td><a href="${path`/console/agents/${i.agentId}`}">${i.agentId}</a> ${statusBadge(i.agentStatus)}</td>
<td>${statusBadge(i.status)} ${i.openedWith}: ${i.reason}</td>
<td><time>${i.openedAt}</time><br><span class="muted">by <code>${i.openedBy}</code></span></td>
<td>${durationOf(i, now)}</td><td class="opt">${i.closedBy ? html`<code>${i.closedBy}</code>` : ''}</td><td class="opt">${i.steps}</td></tr>`,
  )}</tbody></table>`;
}

// ---- approvals ------------------------------------------------------------------------------

export function approvalTable(items: ApprovalView[], opts: { decide: boolean; csrf?: string }): Raw {
  if (items.length === 0) return html`<p class="muted">Nothing here.</p>`;
  return html`<table><thead><tr><th>Agent</th><th>Action</th><th>Justification</th><th>Status</th><th class="opt">Decisions</th>${opts.decide ? html`<th>Decide</th>` : ''}</tr></thead><tbody>${items.map(
    (a) => html`<tr id="${`approval-${a.id}`}"><td><a href="${path`/console/agents/${a.agentId}`}">${a.agentId}</a></td>
<td><code>${a.action}</code>${Object.keys(a.context).length ? html`<br><span class="muted">${JSON.stringify(a.context).slice(0, 200)}</span>` : ''}</td>
<td>${a.justification}<br><span class="muted">by <code>${a.requestedBy}</code></span></td>
<td>${statusBadge(a.status)}</td>
<td class="opt">${a.decisions.map((d) => html`<div><code>${d.by}</code> ${d.decision}${d.reason ? html`: ${d.reason}` : ''} <span class="muted">(${d.via})</span></div>`)}</td>
${opts.decide && opts.csrf
      ? html`<td><form class="inline" method="post" action="${path`/console/approvals/${a.id}/approve`}">${formSecrets(opts.csrf)}<button type="submit">Approve</button></form>
<a href="${path`/console/approvals/${a.id}/deny`}">Deny…</a></td>`
      : ''}</tr>`,
  )}</tbody></table>`;
}

export function approvalsBody(waiting: ApprovalView[], decided: ApprovalView[], csrf: string): Raw {
  return live(
    '/console/approvals',
    html`<h2>Waiting on you (${waiting.length})</h2><section class="card">${approvalTable(waiting, { decide: true, csrf })}</section>
<h2>Recently decided by you</h2><section class="card">${approvalTable(decided, { decide: false })}</section>`,
  );
}

export function denyForm(a: ApprovalView, csrf: string): Raw {
  return html`<section class="card">${approvalTable([a], { decide: false })}
<form class="action" method="post" action="${path`/console/approvals/${a.id}/deny`}">${formSecrets(csrf)}
<label>Reason (required)<input type="text" name="reason" required minlength="3" maxlength="2000"></label>
<button class="danger" type="submit">Deny</button></form></section>`;
}

// ---- audit ----------------------------------------------------------------------------------

export function auditTable(rows: AuditRow[]): Raw {
  if (rows.length === 0) return html`<p class="muted">No entries.</p>`;
  return html`<table><thead><tr><th>#</th><th>When</th><th>Actor</th><th>Action</th><th class="opt">Subject</th><th class="opt">Hash</th></tr></thead><tbody>${rows.map(
    (r) => html`<tr><td>${r.seq}</td><td><time>${r.at}</time></td><td><code>${r.actor}</code></td><td><code>${r.action}</code></td><td class="opt">${r.subject ? html`<a href="${path`/console/agents/${r.subject}`}">${r.subject}</a>` : ''}</td><td class="opt"><code>${r.hash.slice(0, 12)}…</code></td></tr>`,
  )}</tbody></table>`;
}

/** One CSV field: quoted, quotes doubled, and a leading formula character neutralised for spreadsheets. */
export function csvField(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return `"${safe.replace(/"/g, '""')}"`;
}

export function auditCsv(rows: AuditRow[]): string {
  const lines = [['seq', 'at', 'actor', 'action', 'subject', 'payload', 'prev_hash', 'hash'].join(',')];
  for (const r of rows) lines.push([r.seq, r.at.toISOString(), r.actor, r.action, r.subject ?? '', JSON.stringify(r.payload), r.prev_hash, r.hash].map((v) => csvField(String(v))).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

// ---- agent ----------------------------------------------------------------------------------

export interface AgentPageData {
  agent: Agent;
  grants: { scope: string; state: string; keepInContainment: boolean; maxAmount?: number }[];
  score: { score: number | null; tier: string | null; freshness: string; newestEvidence: string | null; pacts: { id: string; severity: string; freshness: string }[] } | null;
  /** The score chart of the last 90 days, as SVG we rendered (escapes its own text). */
  chartSvg: string | null;
  incidents: IncidentSummary[];
  /** The timelines of the latest incidents (the open one first), each newest step last. */
  timelines: { incident: IncidentSummary; steps: { at: string; actor: string; event: string; reason?: string }[] }[];
  approvals: ApprovalView[];
  audit: AuditRow[];
  pendingRestores: { id: string; requestedBy: string; expiresAt: string; reason: string }[];
  /** The agent's latest trust packets (shown to those who may build them: the packet roles and the owner). */
  packets: { id: string; status: string; audience: string | null; requestedBy: string; createdAt: string }[] | null;
}

/** What the signed-in person may do here (a button is shown only when its post would be allowed). */
export interface AgentAbilities {
  /** Build (and download) trust packets: the packet roles, or the agent's owner. */
  packet: boolean;
  contain: boolean;
  narrow: boolean;
  restore: boolean;
  revoke: boolean;
}

export function agentLiveBody(d: AgentPageData, may: AgentAbilities, csrf: string): Raw {
  const a = d.agent;
  const s = d.score;
  return live(
    path`/console/agents/${a.id}`,
    html`<h2>Grants</h2>
<section class="card"><table><thead><tr><th>Scope</th><th>State</th><th class="opt">Constraints</th></tr></thead><tbody>${d.grants.map(
      (g) => html`<tr><td><code>${g.scope}</code></td><td>${statusBadge(g.state)}${g.keepInContainment ? html` <span class="muted">kept in containment</span>` : ''}</td><td class="opt">${g.maxAmount !== undefined ? `max ${g.maxAmount}` : ''}</td></tr>`,
    )}</tbody></table></section>
${d.pendingRestores.length
      ? html`<h2>Restore waiting for a second person</h2><section class="card">${d.pendingRestores.map(
          (r) => html`<p>Requested by <code>${r.requestedBy}</code> until <time>${r.expiresAt}</time>: ${r.reason}</p>
${may.restore ? html`<form class="action" method="post" action="${path`/console/agents/${a.id}/restore`}">${formSecrets(csrf)}<input type="hidden" name="confirm" value="${r.id}"><button type="submit">Confirm restore</button></form>` : ''}`,
        )}</section>`
      : ''}
<h2>Trust</h2>
<section class="card">${s && s.score !== null
      ? html`<p>Score <strong>${s.score}</strong> (${s.tier}) · evidence ${s.freshness}${s.newestEvidence ? html`, newest <time>${s.newestEvidence}</time>` : ''}</p>`
      : html`<p class="muted">No score yet${s ? html` · evidence ${s.freshness}` : ''}.</p>`}
${s?.pacts.length ? html`<p>Pacts: ${s.pacts.map((p) => html`<code>${p.id}</code> (${p.severity}, ${p.freshness}) `)}</p>` : ''}
${d.chartSvg ? html`<div class="chart" role="img" aria-label="Score over the last 90 days">${raw(d.chartSvg)}</div>` : ''}</section>
<h2>Incidents</h2>
<section class="card">${incidentTable(d.incidents)}
${d.timelines.map(
      ({ incident: i, steps }) =>
        html`<h3>Timeline: ${i.openedWith} ${statusBadge(i.status)} <span class="muted">opened <time>${i.openedAt}</time></span></h3><ol>${steps.map((t) => html`<li><time>${t.at}</time> <code>${t.actor}</code> ${t.event}${t.reason ? html`: ${t.reason}` : ''}</li>`)}</ol>`,
    )}</section>
<h2>Approval requests</h2>
<section class="card">${approvalTable(d.approvals, { decide: false })}</section>
${d.packets
      ? html`<h2>Trust packets</h2><section class="card">${d.packets.length
          ? html`<table><thead><tr><th>Built</th><th>For</th><th>Status</th><th>By</th><th></th></tr></thead><tbody>${d.packets.map(
              (p) => html`<tr><td><time>${p.createdAt}</time></td><td>${p.audience ?? ''}</td><td>${statusBadge(p.status)}</td><td><code>${p.requestedBy}</code></td><td>${p.status === 'ready' ? html`<a href="${path`/console/packets/${p.id}/pdf`}">Download PDF</a>` : ''}</td></tr>`,
            )}</tbody></table>`
          : html`<p class="muted">No trust packet built yet.</p>`}</section>`
      : ''}
<h2>Audit entries</h2>
<section class="card">${auditTable(d.audit)}<p><a href="${path`/console/audit?agent=${a.id}`}">All entries for this agent</a></p></section>`,
  );
}

/** The agent's status line, refreshed by itself (above the action forms). */
export function agentHead(a: Agent): Raw {
  return live(path`/console/agents/${a.id}`, html`<p>${statusBadge(a.status)} <span class="muted">owner</span> ${a.owner} · <span class="muted">risk tier</span> ${a.riskTier} · <code>${a.id}</code></p>`, 'live-head');
}

/** The action forms: outside the refreshed parts, so typing a reason is never interrupted. */
export function agentActions(a: Agent, may: AgentAbilities, csrf: string): Raw {
  if (!may.contain && !may.narrow && !may.restore && !may.revoke && !may.packet) return html`<p class="muted">Your roles do not allow actions on agents.</p>`;
  const reason = html`<label>Reason<input type="text" name="reason" maxlength="2000" placeholder="why"></label>`;
  return html`<h2>Actions</h2><section class="card" aria-label="Actions">
${may.contain ? html`<form class="action" method="post" action="${path`/console/agents/${a.id}/contain`}">${formSecrets(csrf)}${reason}<label>Lifts itself after (optional)<input type="text" name="ttl" placeholder="2h" maxlength="10"></label><button class="danger" type="submit">Contain</button></form>` : ''}
${may.narrow ? html`<form class="action" method="post" action="${path`/console/agents/${a.id}/narrow`}">${formSecrets(csrf)}<label>Scopes to suspend<input type="text" name="scopes" required placeholder="payments:*" maxlength="2000"></label>${reason}<button type="submit">Narrow</button></form>` : ''}
${may.restore ? html`<form class="action" method="post" action="${path`/console/agents/${a.id}/restore`}">${formSecrets(csrf)}${reason}<button type="submit">Restore</button></form>` : ''}
${may.revoke ? html`<form class="action" method="post" action="${path`/console/agents/${a.id}/revoke`}">${formSecrets(csrf)}${reason}<button class="danger" type="submit">Revoke…</button></form>` : ''}
${may.packet ? html`<form class="action" method="post" action="${path`/console/agents/${a.id}/packet`}">${formSecrets(csrf)}<label>For (company, optional)<input type="text" name="audience" maxlength="200"></label><button class="secondary" type="submit">Build a trust packet</button></form>` : ''}
</section>`;
}

/** The second step of a revoke: nothing has changed yet. */
export function revokeConfirmForm(agentId: string, confirmationId: string, reason: string, csrf: string): Raw {
  return html`<form class="action" method="post" action="${path`/console/agents/${agentId}/revoke`}">${formSecrets(csrf)}
<input type="hidden" name="confirm" value="${confirmationId}"><input type="hidden" name="reason" value="${reason}">
<button class="danger" type="submit">Yes, revoke ${agentId}</button> <a href="${path`/console/agents/${agentId}`}">Cancel</a></form>`;
}
