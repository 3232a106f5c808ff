import { sql, type Selectable } from 'kysely';
import type { Db, DbOrTrx } from '../db/database.js';
import { addOutboxJob } from '../outbox/outbox.repository.js';
import type { FleetConfirmationsTable, FleetIncidentsTable } from '../db/schema.js';
import { deriveStatus, type ActiveAction, type Agent, type Grant, type RestrictingKind, type TouchedGrant } from '../domain/agent.js';
import { globToLike, type FleetSelector } from '../domain/fleet-selector.js';
import { announceDecided } from '../confirmations/confirmations.repository.js';
import type { GrantRow } from '../agents/registration-batch.js';

export type FleetIncidentRow = Selectable<FleetIncidentsTable>;
export type FleetConfirmationRow = Selectable<FleetConfirmationsTable>;

/**
 * A set of agent ids as one parameter: a JSON array (one native stringify; a Postgres array
 * parameter is escaped element by element), expanded by Postgres.
 */
const idSet = (ids: readonly string[]) => sql`(select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))`;

/** The SQL conditions of a selector on `agents a` (the grant test is the SQL form of `scopesOverlap`). */
function selectorWhere(selector: FleetSelector) {
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
  return sql.join(where, sql` and `);
}

interface AgentBaseRow {
  id: string;
  name: string;
  owner: string;
  risk_tier: Agent['riskTier'];
  version: string;
  updated_at: Date;
  decommissioned_at: Date | null;
  decommissioned_by: string | null;
  decommission_reason: string | null;
}

const AGENT_COLUMNS = sql`a.id, a.name, a.owner, a.risk_tier, a.version::text as version, a.updated_at, a.decommissioned_at, a.decommissioned_by, a.decommission_reason`;

/**
 * The agents a selector matches, in id order, from Postgres (never a replica's view), with their
 * grants and actions in force: three statements whatever the fleet's size (the ids go as one array
 * parameter, never a list of parameters). With `forUpdate`, their rows are locked in id order (two
 * fleet actions over overlapping sets take turns instead of deadlocking), and what is read after
 * the lock is what they hold while we hold them.
 */
export async function loadSelectedAgents(db: DbOrTrx, selector: FleetSelector, options: { forUpdate?: boolean } = {}): Promise<Agent[]> {
  const { rows } = await sql<AgentBaseRow>`
    select ${AGENT_COLUMNS} from agents a where ${selectorWhere(selector)}
    order by a.id ${options.forUpdate ? sql`for update of a` : sql``}`.execute(db);
  return withState(db, rows);
}

/** These agents (id order), with their grants and actions in force; with `forUpdate`, locked first. */
export async function loadAgentsByIds(db: DbOrTrx, ids: readonly string[], options: { forUpdate?: boolean } = {}): Promise<Agent[]> {
  if (ids.length === 0) return [];
  const { rows } = await sql<AgentBaseRow>`
    select ${AGENT_COLUMNS} from agents a where a.id in ${idSet(ids)}
    order by a.id ${options.forUpdate ? sql`for update of a` : sql``}`.execute(db);
  return withState(db, rows);
}

interface ActionRow {
  id: string;
  agent_id: string;
  kind: RestrictingKind;
  scopes: string[];
  reason: string;
  actor: string;
  created_at: Date;
  expires_at: Date | null;
  touched_grants: TouchedGrant[];
}

const byScope = (x: { scope: string }, y: { scope: string }) => (x.scope < y.scope ? -1 : x.scope > y.scope ? 1 : 0);

/**
 * The agents' grants and actions in force as flat rows, grouped here: the same Agent `loadAgents`
 * builds (grants by scope, actions by time, status derived from the actions), without the trust
 * score and evidence a fleet action does not use.
 */
async function withState(db: DbOrTrx, rows: AgentBaseRow[]): Promise<Agent[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const [grants, actions] = await Promise.all([
    sql<GrantRow>`
      select id, agent_id, scope, constraints, keep_in_containment, expires_at, granted_by, granted_at
      from grants where agent_id in ${idSet(ids)} and removed_at is null`.execute(db),
    sql<ActionRow>`
      select id, agent_id, kind, scopes, reason, actor, created_at, expires_at, touched_grants
      from agent_actions where agent_id in ${idSet(ids)} and lifted_at is null and kind <> 'restore'`.execute(db),
  ]);
  const grantsOf = new Map<string, Grant[]>();
  for (const g of grants.rows) {
    let list = grantsOf.get(g.agent_id);
    if (!list) grantsOf.set(g.agent_id, (list = []));
    list.push({ id: g.id, scope: g.scope, constraints: g.constraints, keepInContainment: g.keep_in_containment, expiresAt: g.expires_at, grantedBy: g.granted_by, grantedAt: g.granted_at });
  }
  const actionsOf = new Map<string, ActiveAction[]>();
  for (const a of actions.rows) {
    let list = actionsOf.get(a.agent_id);
    if (!list) actionsOf.set(a.agent_id, (list = []));
    list.push({ id: a.id, kind: a.kind, scopes: a.scopes, reason: a.reason, actor: a.actor, createdAt: a.created_at, expiresAt: a.expires_at, touched: a.touched_grants });
  }
  return rows.map((r) => {
    const activeActions = (actionsOf.get(r.id) ?? []).sort((x, y) => x.createdAt.getTime() - y.createdAt.getTime());
    return {
      id: r.id,
      name: r.name,
      owner: r.owner,
      riskTier: r.risk_tier,
      status: r.decommissioned_at ? ('decommissioned' as const) : deriveStatus(activeActions),
      version: BigInt(r.version),
      updatedAt: r.updated_at,
      grants: (grantsOf.get(r.id) ?? []).sort(byScope),
      activeActions,
      decommissioned: r.decommissioned_at ? { at: r.decommissioned_at, by: r.decommissioned_by ?? 'unknown', reason: r.decommission_reason ?? '' } : null,
    };
  });
}

/** The open per-agent incident of each of these agents. */
export async function openIncidentsOf(db: DbOrTrx, ids: readonly string[]): Promise<Map<string, { id: string; openedAt: Date }>> {
  const out = new Map<string, { id: string; openedAt: Date }>();
  if (ids.length === 0) return out;
  const { rows } = await sql<{ id: string; agent_id: string; opened_at: Date }>`
    select id, agent_id, opened_at from incidents where agent_id in ${idSet(ids)} and status = 'open'`.execute(db);
  for (const r of rows) out.set(r.agent_id, { id: r.id, openedAt: r.opened_at });
  return out;
}

/**
 * Cancels the open restore confirmations of these agents (a new incident opened for each, or its
 * incident ended): the same rule `openIncident` and `closeIncident` apply to one agent.
 */
export async function cancelRestoreConfirmations(trx: DbOrTrx, agentIds: readonly string[], by: { actor: string; reason: string; now: Date }): Promise<void> {
  if (agentIds.length === 0) return;
  const { rows } = await sql<{ id: string }>`
    update confirmations set decided_at = ${by.now}, decided_by = ${by.actor}, outcome = 'cancelled', decided_reason = ${by.reason}
    where agent_id in ${idSet(agentIds)} and kind = 'restore' and decided_at is null
    returning id`.execute(trx);
  for (const r of rows) await announceDecided(trx, r.id, by.now);
}

/** Agents among these with approval requests a containment would cancel (pending, or approved and maybe unused). */
export async function agentsWithOpenApprovals(db: DbOrTrx, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const { rows } = await sql<{ agent_id: string }>`
    select distinct agent_id from approval_requests where agent_id in ${idSet(ids)} and status in ('pending', 'approved')`.execute(db);
  return new Set(rows.map((r) => r.agent_id));
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
  if (ids.length === 0) return out;
  const { rows } = await sql<{ agent_id: string; opened_at: Date }>`
    select i.agent_id, i.opened_at from incidents i
    where i.agent_id in ${idSet(ids)} and i.status = 'open'
      and not exists (select 1 from evaluations e where e.agent_id = i.agent_id and e.observed_at > i.opened_at)`.execute(db);
  for (const r of rows) out.set(r.agent_id, r.opened_at);
  return out;
}

export async function findFleetConfirmation(db: DbOrTrx, id: string, options: { forUpdate?: boolean } = {}): Promise<FleetConfirmationRow | undefined> {
  let q = db.selectFrom('fleet_confirmations').selectAll().where('id', '=', id);
  if (options.forUpdate) q = q.forUpdate();
  return q.executeTakeFirst();
}

/** The fleet incident an agent action is part of, if any. */
export async function fleetIncidentOfAction(db: DbOrTrx, actionId: string): Promise<string | null> {
  const row = await db.selectFrom('agent_actions').select('fleet_incident_id').where('id', '=', actionId).executeTakeFirst();
  return row?.fleet_incident_id ?? null;
}

/**
 * Closes an open fleet incident once none of its actions is in force any more (its ttl lifted the
 * last of them, or they were restored agent by agent), as a single incident closes when its agent
 * is active again; its root notice is refreshed to show it resolved. Idempotent, and race-free when
 * called after each lift commits: the call that starts after the last lift committed sees them all.
 * True when this call closed it.
 */
export async function closeFleetIncidentIfLifted(db: Db, fleetIncidentId: string, actor: string, now: Date): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ id: string }>`
      update fleet_incidents f set status = 'closed', closed_at = ${now}, closed_by = ${actor}
      where f.id = ${fleetIncidentId} and f.status = 'open'
        and not exists (select 1 from agent_actions x where x.fleet_incident_id = f.id and x.kind <> 'restore' and x.lifted_at is null)
      returning f.id`.execute(trx);
    if (rows.length === 0) return false;
    await addOutboxJob(trx, { jobName: 'fleet-update', payload: { fleetIncidentId, event: 'refresh' } }, now);
    return true;
  });
}

/** An agent a containment by selector would act on, as its first commit classifies it (no grants read). */
export interface ContainCandidate {
  id: string;
  /** A contain of its own is in force, or another fleet containment holds it already. */
  contained: boolean;
  revoked: boolean;
}

/**
 * The agents a selector matches, in id order, classified for a containment without reading their
 * grants: whether a contain is in force (or an unreleased fleet hold already holds them) and whether
 * they are revoked. One statement whatever the fleet's size; the containment's second commit reads
 * the held agents in full, under row locks.
 */
export async function selectForContain(db: DbOrTrx, selector: FleetSelector): Promise<ContainCandidate[]> {
  const { rows } = await sql<ContainCandidate>`
    select a.id,
      (exists (select 1 from agent_actions x where x.agent_id = a.id and x.lifted_at is null and x.kind = 'contain')
        or exists (select 1 from fleet_incidents f where f.hold_version is not null and f.hold_released_version is null and f.agent_ids ? a.id)) as contained,
      exists (select 1 from agent_actions x where x.agent_id = a.id and x.lifted_at is null and x.kind = 'revoke') as revoked
    from agents a where ${selectorWhere(selector)}
    order by a.id`.execute(db);
  return rows;
}

/** What a hold says of its containment (the contain it gives each of its agents). */
export interface HoldInfo {
  id: string;
  reason: string;
  actor: string;
  openedAt: Date;
  expiresAt: Date | null;
  version: bigint;
}

/** A fleet containment's hold as the replicas' views read it. */
export interface FleetHold extends HoldInfo {
  /** Null once released (the view only needs to forget it). */
  agentIds: string[] | null;
  releasedVersion: bigint | null;
}

/** The columns of a hold, and its shape in TypeScript. */
const HOLD_COLUMNS = sql`id, reason, actor, opened_at, ttl_ms::text as ttl_ms, hold_version::text as hold_version`;
const HELD = sql`hold_version is not null and hold_released_version is null`;
interface HoldRow {
  id: string;
  reason: string;
  actor: string;
  /** A Date from a column; ISO text from JSON (`holdsJson`). */
  opened_at: Date | string;
  ttl_ms: string | null;
  hold_version: string;
}
const toHold = (r: HoldRow): HoldInfo => {
  const openedAt = r.opened_at instanceof Date ? r.opened_at : new Date(r.opened_at);
  return {
    id: r.id,
    reason: r.reason,
    actor: r.actor,
    openedAt,
    expiresAt: r.ttl_ms === null ? null : new Date(openedAt.getTime() + Number(r.ttl_ms)),
    version: BigInt(r.hold_version),
  };
};

/** A hold as `holdsJson` gives it. */
export interface FleetHoldJson extends HoldRow {
  agent_ids: string[] | null;
  hold_released_version: string | null;
}

/**
 * The holds in force, and what became of `known` ones (the holds a view holds: released ones come
 * back with `hold_released_version` and no agents), as one JSON array: an expression, so that a
 * view's catch-up reads them in the same statement, and so the same snapshot, as the agents (see
 * `loadAgentsAboveWithHolds`).
 */
export function holdsJson(known: readonly string[]) {
  return sql<FleetHoldJson[]>`coalesce((
    select json_agg(json_build_object('id', id, 'reason', reason, 'actor', actor, 'opened_at', opened_at,
      'ttl_ms', ttl_ms::text, 'hold_version', hold_version::text,
      'agent_ids', case when hold_released_version is null then agent_ids end,
      'hold_released_version', hold_released_version::text))
    from fleet_incidents
    where ${HELD} ${known.length > 0 ? sql`or (hold_version is not null and id = any(${known}::uuid[]))` : sql``}), '[]'::json)`;
}

export function toFleetHolds(rows: readonly FleetHoldJson[]): FleetHold[] {
  return rows.map((r) => ({ ...toHold(r), agentIds: r.agent_ids, releasedVersion: r.hold_released_version === null ? null : BigInt(r.hold_released_version) }));
}

/**
 * `holdsJson` as a statement of its own. A view reads it around a read of the agents that cannot
 * share its statement (the first load's COPY; see `PermissionView.applyHolds` for what each side
 * proves).
 */
export async function loadHolds(db: DbOrTrx, known: readonly string[]): Promise<FleetHold[]> {
  const { rows } = await sql<{ holds: FleetHoldJson[] }>`select ${holdsJson(known)} as holds`.execute(db);
  return toFleetHolds(rows[0]?.holds ?? []);
}

/** The unrecorded hold holding this agent, if any (the oldest). */
export async function holdOn(db: DbOrTrx, agentId: string): Promise<HoldInfo | undefined> {
  const { rows } = await sql<HoldRow>`
    select ${HOLD_COLUMNS} from fleet_incidents where ${HELD} and agent_ids ? ${agentId} order by hold_version limit 1`.execute(db);
  return rows[0] && toHold(rows[0]);
}

/** Fleet containments whose hold is committed and whose per-agent records are not (yet); with `openedBefore`, only holds older than that. */
export async function unrecordedHolds(db: DbOrTrx, options: { openedBefore?: Date } = {}): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    select id from fleet_incidents where ${HELD} ${options.openedBefore ? sql`and opened_at < ${options.openedBefore}` : sql``} order by opened_at`.execute(db);
  return rows.map((r) => r.id);
}
