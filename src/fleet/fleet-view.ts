import type { DbOrTrx } from '../db/database.js';
import type { FleetSelector } from '../domain/fleet-selector.js';
import { selectorText } from '../domain/fleet-selector.js';
import { findFleetIncident } from './fleet.repository.js';

/** How many agent ids a fleet notice or a dry run shows. */
export const FLEET_SAMPLE = 10;

/** Everything a fleet incident's notice shows, read from Postgres when it is posted. */
export interface FleetIncidentView {
  id: string;
  action: 'contain' | 'narrow';
  selector: FleetSelector;
  /** The selector as words (`scope:payments:* risk:high`). */
  selectorText: string;
  scopes: string[];
  reason: string;
  actor: string;
  /** Agents the action was applied to. */
  count: number;
  sample: string[];
  status: 'open' | 'closed';
  openedAt: Date;
  closedAt: Date | null;
  closedBy: string | null;
  /** Agents whose fleet action is still in force. */
  heldNow: number;
  /** Agents whose fleet action a restore lifted. */
  restored: number;
  /** Agents whose fleet action ran out (ttl). */
  expired: number;
  expiresAt: Date | null;
}

export async function loadFleetIncidentView(db: DbOrTrx, id: string): Promise<FleetIncidentView | undefined> {
  const row = await findFleetIncident(db, id);
  if (!row) return undefined;
  const counts = await db
    .selectFrom('agent_actions')
    .select((eb) => [
      eb.fn.count<string>('id').filterWhere('lifted_at', 'is', null).as('held'),
      eb.fn.count<string>('id').filterWhere('lifted_by', '=', 'system:ttl').as('expired'),
      eb.fn.min('expires_at').as('expires_at'),
    ])
    .where('fleet_incident_id', '=', id)
    .where('kind', '<>', 'restore')
    .executeTakeFirstOrThrow();
  const restored = await db.selectFrom('agent_actions').select((eb) => eb.fn.count<string>('id').as('n')).where('fleet_incident_id', '=', id).where('kind', '=', 'restore').executeTakeFirstOrThrow();
  return {
    id: row.id,
    action: row.action,
    selector: row.selector as FleetSelector,
    selectorText: selectorText(row.selector as FleetSelector),
    scopes: row.scopes,
    reason: row.reason,
    actor: row.actor,
    count: row.agent_count,
    sample: row.agent_ids.slice(0, FLEET_SAMPLE),
    status: row.status,
    openedAt: row.opened_at,
    closedAt: row.closed_at,
    closedBy: row.closed_by,
    heldNow: Number(counts.held),
    restored: Number(restored.n),
    expired: Number(counts.expired),
    expiresAt: counts.expires_at ? new Date(counts.expires_at as Date | string) : null,
  };
}

/** A fleet incident as `GET /v1/incidents/{id}` shows it: the selector, the set, and what happened to it. */
export async function loadFleetIncidentDetail(db: DbOrTrx, id: string) {
  const view = await loadFleetIncidentView(db, id);
  if (!view) return undefined;
  const row = (await findFleetIncident(db, id))!;
  const steps = await db
    .selectFrom('agent_actions')
    .select((eb) => ['kind', 'actor', 'created_at', 'lifted_by', eb.fn.countAll<string>().as('n')])
    .where('fleet_incident_id', '=', id)
    .groupBy(['kind', 'actor', 'created_at', 'lifted_by'])
    .orderBy('created_at')
    .execute();
  return {
    id: view.id,
    kind: 'fleet' as const,
    status: view.status,
    action: view.action,
    selector: view.selector,
    selectorText: view.selectorText,
    scopes: view.scopes,
    reason: view.reason,
    openedAt: view.openedAt.toISOString(),
    openedBy: view.actor,
    closedAt: view.closedAt?.toISOString() ?? null,
    closedBy: view.closedBy,
    count: view.count,
    agents: row.agent_ids.slice(0, 100),
    heldNow: view.heldNow,
    restored: view.restored,
    expired: view.expired,
    timeline: steps.map((s) => ({ at: s.created_at.toISOString(), actor: s.actor, event: s.kind, agents: Number(s.n) })),
  };
}
