import { sql } from 'kysely';
import type { DbOrTrx } from '../db/database.js';
import type { AgentStatus, RiskTier } from '../domain/agent.js';
import { statusOf } from '../confirmations/confirmations.repository.js';
import { loadIncidentView, type IncidentStep, type IncidentView } from './incident-view.js';
import { selectorText, type FleetSelector } from '../domain/fleet-selector.js';

/** An incident as the listings show it: what opened it, by whom, and where it stands. */
export interface IncidentSummary {
  id: string;
  kind: 'agent';
  agentId: string;
  agentName: string;
  agentStatus: AgentStatus;
  status: 'open' | 'closed';
  openedAt: string;
  openedBy: string;
  openedVia: string;
  openedWith: IncidentStep['kind'];
  reason: string;
  closedAt: string | null;
  closedBy: string | null;
  steps: number;
  /** The fleet incident (POST /v1/actions) that opened it, if a fleet action did. */
  fleetIncidentId: string | null;
}

/** A fleet incident as the REST listing shows it, beside the agents' incidents. */
export interface FleetIncidentSummary {
  id: string;
  kind: 'fleet';
  status: 'open' | 'closed';
  openedAt: string;
  openedBy: string;
  openedVia: string;
  openedWith: 'contain' | 'narrow';
  reason: string;
  closedAt: string | null;
  closedBy: string | null;
  selector: FleetSelector;
  selectorText: string;
  count: number;
  heldNow: number;
}

export type TimelineEvent = IncidentStep['kind'] | 'expired' | 'restore_requested' | 'revoke_requested' | 'closed';

/** One line of an incident's timeline: who did what, when, via which platform. */
export interface TimelineEntry {
  at: string;
  actor: string;
  via: string;
  event: TimelineEvent;
  actionId?: string;
  reason?: string;
  scopes?: string[];
  grants?: string[];
  expiresAt?: string | null;
  liftedAt?: string | null;
  liftedBy?: string | null;
  approvalsCancelled?: string[];
  confirmationId?: string;
  outcome?: string | null;
  decidedBy?: string | null;
  decidedAt?: string | null;
  auditSeq?: string | null;
}

export interface IncidentDetail extends IncidentSummary {
  agent: { id: string; name: string; owner: string; riskTier: RiskTier; status: AgentStatus };
  heldGrants: { scope: string; state: string }[];
  timeline: TimelineEntry[];
}

/**
 * The platform an actor acted through, from the actor string every writer records:
 * `slack:U…`, `teams:…`, `api:<token name>`, `console:<person>`, `system:<part>`.
 */
export function viaOf(actor: string): string {
  const prefix = actor.slice(0, actor.indexOf(':'));
  return ['slack', 'teams', 'api', 'console', 'system'].includes(prefix) ? prefix : 'unknown';
}

/** Exact timestamp text (microseconds, UTC) for keyset pagination: a JS Date would drop the microseconds. */
const exactTime = (column: string) => sql<string>`to_char(${sql.ref(column)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

interface SummaryRow {
  id: string;
  agent_id: string;
  agent_name: string;
  agent_status: AgentStatus;
  status: 'open' | 'closed';
  opened_at: Date;
  opened_at_exact: string;
  closed_at: Date | null;
  closed_by: string | null;
  opened_by: string;
  opened_with: IncidentStep['kind'];
  reason: string;
  steps: string;
  fleet_incident_id: string | null;
}

function summaryQuery(db: DbOrTrx) {
  return db
    .selectFrom('incidents as i')
    .innerJoin('agents as a', 'a.id', 'i.agent_id')
    .innerJoin('agent_actions as o', 'o.id', 'i.opened_by_action_id')
    .select([
      'i.id',
      'i.agent_id',
      'a.name as agent_name',
      'a.status as agent_status',
      'i.status',
      'i.opened_at',
      exactTime('i.opened_at').as('opened_at_exact'),
      'i.closed_at',
      'i.closed_by',
      'i.fleet_incident_id',
      'o.actor as opened_by',
      'o.kind as opened_with',
      'o.reason',
      sql<string>`(select count(*) from agent_actions s where s.incident_id = i.id)`.as('steps'),
    ]);
}

function toSummary(row: SummaryRow): IncidentSummary {
  return {
    id: row.id,
    kind: 'agent',
    agentId: row.agent_id,
    agentName: row.agent_name,
    agentStatus: row.agent_status,
    status: row.status,
    openedAt: row.opened_at.toISOString(),
    openedBy: row.opened_by,
    openedVia: viaOf(row.opened_by),
    openedWith: row.opened_with,
    reason: row.reason,
    closedAt: row.closed_at?.toISOString() ?? null,
    closedBy: row.closed_by,
    steps: Number(row.steps),
    fleetIncidentId: row.fleet_incident_id,
  };
}

/** One page of incidents, newest first (by opening time, then id). `after` is the last item of the previous page. */
export async function listIncidents(
  db: DbOrTrx,
  filter: { status?: 'open' | 'closed'; agentId?: string },
  page: { limit: number; after?: { at: string; id: string } },
): Promise<{ items: IncidentSummary[]; nextAfter: { at: string; id: string } | null }> {
  let q = summaryQuery(db);
  if (filter.status) q = q.where('i.status', '=', filter.status);
  if (filter.agentId !== undefined) q = q.where('i.agent_id', '=', filter.agentId);
  if (page.after) q = q.where(sql<boolean>`(i.opened_at, i.id) < (${page.after.at}::timestamptz, ${page.after.id}::uuid)`);
  const rows = (await q.orderBy('i.opened_at', 'desc').orderBy('i.id', 'desc').limit(page.limit + 1).execute()) as SummaryRow[];
  const shown = rows.slice(0, page.limit);
  const last = shown[shown.length - 1];
  return { items: shown.map(toSummary), nextAfter: rows.length > page.limit && last ? { at: last.opened_at_exact, id: last.id } : null };
}

/**
 * One page of the REST listing: the agents' incidents and the fleet incidents together, newest
 * first (by opening time, then id), one keyset over both. Each side is read with the same bound
 * and limit, and the page is the newest `limit` of the two.
 */
export async function listIncidentsWithFleet(
  db: DbOrTrx,
  filter: { status?: 'open' | 'closed' },
  page: { limit: number; after?: { at: string; id: string } },
): Promise<{ items: (IncidentSummary | FleetIncidentSummary)[]; nextAfter: { at: string; id: string } | null }> {
  let agentQ = summaryQuery(db);
  let fleetQ = db
    .selectFrom('fleet_incidents as f')
    .select([
      'f.id',
      'f.status',
      'f.opened_at',
      exactTime('f.opened_at').as('opened_at_exact'),
      'f.closed_at',
      'f.closed_by',
      'f.actor',
      'f.action',
      'f.reason',
      'f.selector',
      'f.agent_count',
      sql<string>`(select count(*) from agent_actions x where x.fleet_incident_id = f.id and x.kind <> 'restore' and x.lifted_at is null)`.as('held'),
    ]);
  if (filter.status) {
    agentQ = agentQ.where('i.status', '=', filter.status);
    fleetQ = fleetQ.where('f.status', '=', filter.status);
  }
  if (page.after) {
    agentQ = agentQ.where(sql<boolean>`(i.opened_at, i.id) < (${page.after.at}::timestamptz, ${page.after.id}::uuid)`);
    fleetQ = fleetQ.where(sql<boolean>`(f.opened_at, f.id) < (${page.after.at}::timestamptz, ${page.after.id}::uuid)`);
  }
  const [agentRows, fleetRows] = await Promise.all([
    agentQ.orderBy('i.opened_at', 'desc').orderBy('i.id', 'desc').limit(page.limit + 1).execute() as Promise<SummaryRow[]>,
    fleetQ.orderBy('f.opened_at', 'desc').orderBy('f.id', 'desc').limit(page.limit + 1).execute(),
  ]);
  type Keyed = { at: string; id: string; item: IncidentSummary | FleetIncidentSummary };
  const merged: Keyed[] = [
    ...agentRows.map((r) => ({ at: r.opened_at_exact, id: r.id, item: toSummary(r) })),
    ...fleetRows.map((r) => {
      const selector = r.selector as FleetSelector;
      const item: FleetIncidentSummary = {
        id: r.id,
        kind: 'fleet',
        status: r.status,
        openedAt: r.opened_at.toISOString(),
        openedBy: r.actor,
        openedVia: viaOf(r.actor),
        openedWith: r.action,
        reason: r.reason,
        closedAt: r.closed_at?.toISOString() ?? null,
        closedBy: r.closed_by,
        selector,
        selectorText: selectorText(selector),
        count: r.agent_count,
        heldNow: Number(r.held),
      };
      return { at: r.opened_at_exact, id: r.id, item };
    }),
  ];
  // Newest first; the exact times are fixed-width UTC text and the ids lower-case uuids, so text order is Postgres's order.
  merged.sort((x, y) => (x.at !== y.at ? (x.at < y.at ? 1 : -1) : x.id < y.id ? 1 : x.id > y.id ? -1 : 0));
  const shown = merged.slice(0, page.limit);
  const last = shown[shown.length - 1];
  return { items: shown.map((k) => k.item), nextAfter: merged.length > page.limit && last ? { at: last.at, id: last.id } : null };
}

/** The agent an incident is about, or undefined when there is no such incident (for token scope checks). */
export async function incidentAgentId(db: DbOrTrx, id: string): Promise<string | undefined> {
  return (await db.selectFrom('incidents').select('agent_id').where('id', '=', id).executeTakeFirst())?.agent_id;
}

/**
 * An incident with its timeline, as the Slack and Teams threads tell it: the steps of
 * `loadIncidentView` (what the notices are built from), the lifts by ttl, the two-step requests
 * asked during it, and its end, each with the audit entry that records it where there is one.
 * Only facts about the agent's permissions and this incident: nothing else from the audit log.
 */
export async function loadIncidentDetail(db: DbOrTrx, id: string, now: Date): Promise<IncidentDetail | undefined> {
  const view = await loadIncidentView(db, id, now);
  if (!view) return undefined;
  const summary = (await summaryQuery(db).where('i.id', '=', id).executeTakeFirst()) as SummaryRow | undefined;
  if (!summary) return undefined;
  const actionIds = view.steps.map((s) => s.actionId);
  const [results, confirmations, audit] = await Promise.all([
    actionIds.length ? db.selectFrom('agent_actions').select(['id', 'result']).where('id', 'in', actionIds).execute() : Promise.resolve([]),
    db.selectFrom('confirmations').selectAll().where('incident_id', '=', id).orderBy('created_at').execute(),
    auditOf(db, view),
  ]);
  const cancelledBy = new Map(results.map((r) => [r.id, (r.result as { pendingApprovalsCancelled?: unknown } | null)?.pendingApprovalsCancelled]));
  const timeline: TimelineEntry[] = [];
  for (const step of view.steps) {
    const cancelled = cancelledBy.get(step.actionId);
    timeline.push({
      at: step.at.toISOString(),
      actor: step.actor,
      via: viaOf(step.actor),
      event: step.kind,
      actionId: step.actionId,
      reason: step.reason,
      scopes: step.scopes,
      grants: step.grants,
      expiresAt: step.expiresAt?.toISOString() ?? null,
      liftedAt: step.liftedAt?.toISOString() ?? null,
      liftedBy: step.liftedBy,
      ...(Array.isArray(cancelled) && cancelled.length ? { approvalsCancelled: cancelled.map(String) } : {}),
      auditSeq: audit.actions.get(step.actionId) ?? null,
    });
    // A lift by its ttl is a step of its own in the thread; a lift by a later action is that action.
    const expiry = audit.expiries.get(step.actionId);
    if (step.liftedAt && expiry) {
      timeline.push({ at: step.liftedAt.toISOString(), actor: step.liftedBy ?? 'system:ttl', via: viaOf(step.liftedBy ?? 'system:ttl'), event: 'expired', actionId: step.actionId, auditSeq: expiry });
    }
  }
  for (const c of confirmations) {
    timeline.push({
      at: c.created_at.toISOString(),
      actor: c.requested_by,
      via: viaOf(c.requested_by),
      event: c.kind === 'restore' ? 'restore_requested' : 'revoke_requested',
      confirmationId: c.id,
      reason: String(c.payload.reason ?? ''),
      outcome: statusOf(c, now) === 'pending' ? null : statusOf(c, now),
      decidedBy: c.decided_by,
      decidedAt: c.decided_at?.toISOString() ?? null,
    });
  }
  if (view.status === 'closed' && view.closedAt) {
    const actor = view.closedBy ?? 'unknown';
    timeline.push({ at: view.closedAt.toISOString(), actor, via: viaOf(actor), event: 'closed' });
  }
  // Oldest first; at the same instant the order above (an action before the close it caused) holds.
  const order = new Map(timeline.map((e, i) => [e, i]));
  timeline.sort((x, y) => x.at.localeCompare(y.at) || order.get(x)! - order.get(y)!);
  const { agent } = view;
  return {
    ...toSummary(summary),
    agent: { id: agent.id, name: agent.name, owner: agent.owner, riskTier: agent.riskTier, status: agent.status },
    heldGrants: view.heldGrants,
    timeline,
  };
}

/** The audit entries recording this incident's actions and their ttl lifts, by action id. */
async function auditOf(db: DbOrTrx, view: IncidentView): Promise<{ actions: Map<string, string>; expiries: Map<string, string> }> {
  const actions = new Map<string, string>();
  const expiries = new Map<string, string>();
  if (view.steps.length === 0) return { actions, expiries };
  const rows = await db
    .selectFrom('audit_log')
    .select(['seq', 'action', 'payload'])
    .where('subject', '=', view.agent.id)
    .where('action', 'in', ['agent.narrow', 'agent.contain', 'agent.revoke', 'agent.restore', 'agent.action_expired'])
    .where('at', '>=', view.openedAt)
    .orderBy('seq')
    .execute();
  const ids = new Set(view.steps.map((s) => s.actionId));
  for (const row of rows) {
    const payload = row.payload as { action?: { id?: unknown }; actionId?: unknown } | null;
    if (row.action === 'agent.action_expired') {
      if (typeof payload?.actionId === 'string' && ids.has(payload.actionId)) expiries.set(payload.actionId, row.seq);
    } else if (typeof payload?.action?.id === 'string' && ids.has(payload.action.id)) {
      actions.set(payload.action.id, row.seq);
    }
  }
  return { actions, expiries };
}
