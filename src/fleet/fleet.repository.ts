import { sql, type Selectable } from 'kysely';
import type { DbOrTrx } from '../db/database.js';
import type { FleetConfirmationsTable, FleetIncidentsTable, TouchedGrant } from '../db/schema.js';
import type { Agent } from '../domain/agent.js';
import { globToLike, type FleetSelector } from '../domain/fleet-selector.js';
import { loadAgents } from '../agents/agents.repository.js';
import { announceDecided } from '../confirmations/confirmations.repository.js';

export type FleetIncidentRow = Selectable<FleetIncidentsTable>;
export type FleetConfirmationRow = Selectable<FleetConfirmationsTable>;

/** Ids per statement: far below Postgres's 65,535 parameters, whatever the fleet's size. */
export const CHUNK = 2000;

export function chunks<T>(items: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * The ids of the agents a selector matches, in id order, from Postgres (never a replica's view).
 * With `forUpdate`, their rows are locked in id order (two fleet actions over overlapping sets take
 * turns instead of deadlocking). The grant test is the SQL form of `scopesOverlap`: the selector
 * glob matches the grant, or the grant (itself a glob) matches the selector.
 */
export async function selectAgentIds(db: DbOrTrx, selector: FleetSelector, options: { forUpdate?: boolean } = {}): Promise<string[]> {
  const where = [sql`a.status <> 'decommissioned'`];
  if (selector.owner !== undefined) where.push(sql`lower(a.owner) = ${selector.owner.toLowerCase()}`);
  if (selector.riskTier !== undefined) where.push(sql`a.risk_tier = ${selector.riskTier}`);
  if (selector.scope !== undefined) {
    where.push(sql`exists (
      select 1 from grants g
      where g.agent_id = a.id and g.removed_at is null
        and (g.scope like ${globToLike(selector.scope)} escape '\\'
          or ${selector.scope} like replace(replace(replace(replace(g.scope, '\\', '\\\\'), '%', '\\%'), '_', '\\_'), '*', '%') escape '\\'))`);
  }
  const { rows } = await sql<{ id: string }>`
    select a.id from agents a where ${sql.join(where, sql` and `)}
    order by a.id ${options.forUpdate ? sql`for update of a` : sql``}`.execute(db);
  return rows.map((r) => r.id);
}

/** Agents by id (grants, actions in force), a chunk at a time; order follows `ids`. */
export async function loadAgentsByIds(db: DbOrTrx, ids: readonly string[]): Promise<Agent[]> {
  const out: Agent[] = [];
  for (const part of chunks(ids)) {
    const byId = new Map((await loadAgents(db, { ids: part })).map((a) => [a.id, a]));
    for (const id of part) {
      const agent = byId.get(id);
      if (agent) out.push(agent);
    }
  }
  return out;
}

/** Locks these agent rows, in id order. */
export async function lockAgents(trx: DbOrTrx, ids: readonly string[]): Promise<void> {
  const sorted = [...ids].sort();
  for (const part of chunks(sorted)) await trx.selectFrom('agents').select('id').where('id', 'in', part).orderBy('id').forUpdate().execute();
}

/** The open per-agent incident of each of these agents. */
export async function openIncidentsOf(db: DbOrTrx, ids: readonly string[]): Promise<Map<string, { id: string; openedAt: Date }>> {
  const out = new Map<string, { id: string; openedAt: Date }>();
  for (const part of chunks(ids)) {
    const rows = await db.selectFrom('incidents').select(['id', 'agent_id', 'opened_at']).where('agent_id', 'in', part).where('status', '=', 'open').execute();
    for (const r of rows) out.set(r.agent_id, { id: r.id, openedAt: r.opened_at });
  }
  return out;
}

/** Opens one per-agent incident for each agent (all linked to the fleet incident). */
export async function openIncidents(trx: DbOrTrx, rows: { id: string; agentId: string; actionId: string }[], fleetIncidentId: string, now: Date): Promise<void> {
  for (const part of chunks(rows, 1000)) {
    await trx
      .insertInto('incidents')
      .values(part.map((r) => ({ id: r.id, agent_id: r.agentId, status: 'open' as const, opened_by_action_id: r.actionId, opened_at: now, fleet_incident_id: fleetIncidentId })))
      .execute();
  }
}

/** Closes these per-agent incidents (their agents are active again). */
export async function closeIncidents(trx: DbOrTrx, ids: readonly string[], actor: string, now: Date): Promise<void> {
  for (const part of chunks(ids)) await trx.updateTable('incidents').set({ status: 'closed', closed_at: now, closed_by: actor }).where('id', 'in', part).execute();
}

/**
 * Cancels the open restore confirmations of these agents (a new incident opened for each, or its
 * incident ended): the same rule `openIncident` and `closeIncident` apply to one agent.
 */
export async function cancelRestoreConfirmations(trx: DbOrTrx, agentIds: readonly string[], by: { actor: string; reason: string; now: Date }): Promise<void> {
  for (const part of chunks(agentIds)) {
    const rows = await trx
      .updateTable('confirmations')
      .set({ decided_at: by.now, decided_by: by.actor, outcome: 'cancelled', decided_reason: by.reason })
      .where('agent_id', 'in', part)
      .where('kind', '=', 'restore')
      .where('decided_at', 'is', null)
      .returning('id')
      .execute();
    for (const r of rows) await announceDecided(trx, r.id, by.now);
  }
}

/** Agents among these with approval requests a containment would cancel (pending, or approved and maybe unused). */
export async function agentsWithOpenApprovals(db: DbOrTrx, ids: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const part of chunks(ids)) {
    const rows = await db.selectFrom('approval_requests').select('agent_id').distinct().where('agent_id', 'in', part).where('status', 'in', ['pending', 'approved']).execute();
    for (const r of rows) out.add(r.agent_id);
  }
  return out;
}

/**
 * `n` permission versions, in one statement under the audit head lock (see `nextPermissionVersion`):
 * one per agent, so every agent's change has a version of its own, in commit order.
 */
export async function drawVersions(trx: DbOrTrx, n: number): Promise<bigint[]> {
  if (!trx.isTransaction) throw new Error('permission versions must be taken inside the transaction that commits them');
  if (n === 0) return [];
  const { rows } = await sql<{ v: string }>`
    select nextval('permission_version_seq')::text as v
    from (select 1 from audit_head where id = 1 for update) as head, generate_series(1, ${n}::int)`.execute(trx);
  return rows.map((r) => BigInt(r.v)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export interface NewAgentAction {
  id: string;
  agentId: string;
  kind: 'narrow' | 'contain' | 'restore';
  scopes: string[];
  reason: string;
  actor: string;
  ttlMs: number | null;
  expiresAt: Date | null;
  touched: TouchedGrant[];
  incidentId: string | null;
  result: unknown;
}

/** Inserts the agents' action rows, each linked to the fleet incident. */
export async function insertFleetActions(trx: DbOrTrx, actions: NewAgentAction[], fleetIncidentId: string, now: Date): Promise<void> {
  for (const part of chunks(actions, 500)) {
    await trx
      .insertInto('agent_actions')
      .values(
        part.map((a) => ({
          id: a.id,
          agent_id: a.agentId,
          kind: a.kind,
          scopes: JSON.stringify(a.scopes),
          reason: a.reason,
          actor: a.actor,
          ttl_ms: a.ttlMs,
          expires_at: a.expiresAt,
          touched_grants: JSON.stringify(a.touched),
          created_at: now,
          incident_id: a.incidentId,
          idempotency_key: null,
          result: JSON.stringify(a.result),
          fleet_incident_id: fleetIncidentId,
        })),
      )
      .execute();
  }
}

/** Sets each agent's status and permission version, in statements of a chunk each. */
export async function setAgentStates(trx: DbOrTrx, states: { id: string; status: Agent['status']; version: bigint }[], actor: string, now: Date): Promise<void> {
  for (const part of chunks(states, 1000)) {
    await sql`
      update agents set status = v.status, version = v.version, updated_by = ${actor}, updated_at = ${now}
      from (select unnest(${part.map((s) => s.id)}::text[]) as id, unnest(${part.map((s) => s.status)}::text[]) as status,
                   unnest(${part.map((s) => s.version.toString())}::bigint[]) as version) as v
      where agents.id = v.id`.execute(trx);
  }
}

/** Marks these actions lifted by the restore actions that lift them. */
export async function liftFleetActions(trx: DbOrTrx, lifts: { actionId: string; byActionId: string }[], by: { actor: string; reason: string; now: Date }): Promise<void> {
  for (const part of chunks(lifts, 1000)) {
    await sql`
      update agent_actions set lifted_at = ${by.now}, lifted_by = ${by.actor}, lift_reason = ${by.reason}, lifted_by_action_id = v.by
      from (select unnest(${part.map((l) => l.actionId)}::uuid[]) as id, unnest(${part.map((l) => l.byActionId)}::uuid[]) as by) as v
      where agent_actions.id = v.id and agent_actions.lifted_at is null`.execute(trx);
  }
}

/** The newest open fleet incident with this selector, if any. */
export async function findOpenFleetIncident(db: DbOrTrx, selectorKey: string, options: { forUpdate?: boolean } = {}): Promise<FleetIncidentRow | undefined> {
  let q = db.selectFrom('fleet_incidents').selectAll().where('selector_key', '=', selectorKey).where('status', '=', 'open').orderBy('opened_at', 'desc').limit(1);
  if (options.forUpdate) q = q.forUpdate();
  return q.executeTakeFirst();
}

export async function findFleetIncident(db: DbOrTrx, id: string, options: { forUpdate?: boolean } = {}): Promise<FleetIncidentRow | undefined> {
  let q = db.selectFrom('fleet_incidents').selectAll().where('id', '=', id);
  if (options.forUpdate) q = q.forUpdate();
  return q.executeTakeFirst();
}

/** The fleet incident's agent actions still in force (the contain or narrow of each agent it still holds), in agent order. */
export async function heldByFleet(db: DbOrTrx, fleetIncidentId: string): Promise<{ actionId: string; agentId: string }[]> {
  const rows = await db
    .selectFrom('agent_actions')
    .select(['id', 'agent_id'])
    .where('fleet_incident_id', '=', fleetIncidentId)
    .where('kind', '<>', 'restore')
    .where('lifted_at', 'is', null)
    .orderBy('agent_id')
    .execute();
  return rows.map((r) => ({ actionId: r.id, agentId: r.agent_id }));
}

/**
 * Agents among `ids` that the policy's `restore.freshEvaluation` keeps held: no evaluation observed
 * after their open incident began (the rule a single restore applies, for a whole set in one read).
 */
export async function withoutFreshEvaluation(db: DbOrTrx, ids: readonly string[]): Promise<Map<string, Date>> {
  const out = new Map<string, Date>();
  for (const part of chunks(ids)) {
    const rows = await db
      .selectFrom('incidents as i')
      .select(['i.agent_id', 'i.opened_at'])
      .where('i.agent_id', 'in', part)
      .where('i.status', '=', 'open')
      .where((eb) => eb.not(eb.exists(eb.selectFrom('evaluations as e').select('e.id').whereRef('e.agent_id', '=', 'i.agent_id').whereRef('e.observed_at', '>', 'i.opened_at'))))
      .execute();
    for (const r of rows) out.set(r.agent_id, r.opened_at);
  }
  return out;
}

export async function findFleetConfirmation(db: DbOrTrx, id: string, options: { forUpdate?: boolean } = {}): Promise<FleetConfirmationRow | undefined> {
  let q = db.selectFrom('fleet_confirmations').selectAll().where('id', '=', id);
  if (options.forUpdate) q = q.forUpdate();
  return q.executeTakeFirst();
}
