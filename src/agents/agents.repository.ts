import { sql } from 'kysely';
import type { DbOrTrx } from '../db/database.js';
import type { AgentActionRow, AgentRow } from '../db/schema.js';
import type { ActiveAction, Agent, GrantConstraints, RestrictingKind, RiskTier, TouchedGrant } from '../domain/agent.js';
import type { TrustTier } from '../domain/trust-score.js';
import { deriveStatus } from '../domain/agent.js';
import { cancelOpenRestoreConfirmations } from '../confirmations/confirmations.repository.js';
import type { DrawnHead } from './versioned-commit.js';
import { holdsJson, toFleetHolds, type FleetHold, type FleetHoldJson } from '../fleet/fleet.repository.js';

/** A grant as `loadAgents` reads it: timestamps arrive as JSON text. */
interface GrantJson {
  id: string;
  scope: string;
  constraints: GrantConstraints;
  keep_in_containment: boolean;
  expires_at: string | null;
  granted_by: string;
  granted_at: string;
}

/** An action in force as `loadAgents` reads it. */
interface ActionJson {
  id: string;
  kind: RestrictingKind;
  scopes: string[];
  reason: string;
  actor: string;
  created_at: string;
  expires_at: string | null;
  touched_grants: TouchedGrant[];
}

interface AgentWithState extends AgentRow {
  grants_json: GrantJson[];
  actions_json: ActionJson[];
  trust_tier: string | null;
  trust_score: number | null;
  newest_evidence_at: Date | string | null;
  /** `loadAgentForAction` only. */
  open_incident_id?: string | null;
  has_open_approvals?: boolean;
}

function toAgent(row: AgentWithState): Agent {
  const activeActions: ActiveAction[] = row.actions_json
    .map((a) => ({
      id: a.id,
      kind: a.kind,
      scopes: a.scopes,
      reason: a.reason,
      actor: a.actor,
      createdAt: new Date(a.created_at),
      expiresAt: toDate(a.expires_at),
      touched: a.touched_grants,
    }))
    .sort((x, y) => x.createdAt.getTime() - y.createdAt.getTime());
  return {
    id: row.id,
    name: row.name,
    owner: row.owner,
    riskTier: row.risk_tier,
    // Stored status is derived from the actions in force; derive again so a reader never disagrees.
    // A decommissioned agent stays decommissioned whatever was in force when it was retired.
    status: row.decommissioned_at ? 'decommissioned' : deriveStatus(activeActions),
    version: BigInt(row.version),
    updatedAt: row.updated_at,
    grants: row.grants_json
      .map((g) => ({
        id: g.id,
        scope: g.scope,
        constraints: g.constraints,
        keepInContainment: g.keep_in_containment,
        expiresAt: toDate(g.expires_at),
        grantedBy: g.granted_by,
        grantedAt: new Date(g.granted_at),
      }))
      .sort((x, y) => (x.scope < y.scope ? -1 : x.scope > y.scope ? 1 : 0)),
    activeActions,
    trustTier: (row.trust_tier as TrustTier | null) ?? null,
    trustScore: row.trust_score ?? null,
    newestEvidenceAt: toDate(row.newest_evidence_at),
    decommissioned: row.decommissioned_at ? { at: row.decommissioned_at, by: row.decommissioned_by ?? 'unknown', reason: row.decommission_reason ?? '' } : null,
  };
}

/**
 * Loads agents with their current grants, the actions in force, the latest trust score and tier
 * (grants may require a minimum tier; routing rules match on tier and score) and the newest
 * evidence time (routing's `evidenceOlderThan`): one statement, one round trip and one connection,
 * whatever the number of agents (the view's catch-up and poll run it on every change).
 *
 * With `forUpdate`, the agent rows are locked by a statement of their own first. In READ
 * COMMITTED each statement reads a fresh snapshot, so the read that follows the lock sees all
 * that a transaction we waited for committed (one statement that locked and read at once would
 * read the other tables as they were before that wait).
 */
export async function loadAgents(
  db: DbOrTrx,
  filter: { ids?: string[]; versionAbove?: bigint; forUpdate?: boolean },
): Promise<Agent[]> {
  const rows = await loadAgentRows(db, filter, false);
  return rows.map(toAgent);
}

/**
 * The highest possible version: `version > v and version <= VERSION_CEILING` selects what
 * `version > v` does, but Postgres estimates a closed range as a few rows even before it has
 * statistics (a young table during a burst of writes), so a catch-up reads the version index
 * instead of scanning every agent.
 */
const VERSION_CEILING = '9223372036854775807';

async function loadAgentRows(
  db: DbOrTrx,
  filter: { ids?: string[]; versionAbove?: bigint; forUpdate?: boolean },
  forAction: boolean,
): Promise<AgentWithState[]> {
  let ids = filter.ids;
  if (ids && ids.length === 0) return [];
  if (filter.forUpdate) {
    let lock = db.selectFrom('agents').select('id');
    if (ids) lock = lock.where('id', 'in', ids);
    if (filter.versionAbove !== undefined) lock = lock.where('version', '>', filter.versionAbove.toString()).where('version', '<=', VERSION_CEILING);
    const locked = await lock.forUpdate().execute();
    if (locked.length === 0) return [];
    ids = locked.map((r) => r.id);
  }
  const versionAbove = filter.forUpdate ? undefined : filter.versionAbove;
  return (await agentRowsQuery(db, { ids, versionAbove }, forAction).execute()) as unknown as AgentWithState[];
}

/** The statement of `loadAgentRows` (locks aside): each agent with its grants, actions in force and trust data. */
function agentRowsQuery(db: DbOrTrx, filter: { ids?: string[]; versionAbove?: bigint }, forAction: boolean) {
  const { ids } = filter;
  let q = db
    .selectFrom('agents as a')
    .selectAll('a')
    .select((eb) => [
      sql<GrantJson[]>`coalesce((
        select json_agg(json_build_object('id', g.id, 'scope', g.scope, 'constraints', g.constraints,
          'keep_in_containment', g.keep_in_containment, 'expires_at', g.expires_at,
          'granted_by', g.granted_by, 'granted_at', g.granted_at))
        from grants g where g.agent_id = a.id and g.removed_at is null), '[]'::json)`.as('grants_json'),
      sql<ActionJson[]>`coalesce((
        select json_agg(json_build_object('id', x.id, 'kind', x.kind, 'scopes', x.scopes, 'reason', x.reason,
          'actor', x.actor, 'created_at', x.created_at, 'expires_at', x.expires_at,
          'touched_grants', x.touched_grants))
        from agent_actions x where x.agent_id = a.id and x.lifted_at is null and x.kind <> 'restore'), '[]'::json)`.as('actions_json'),
      eb
        .selectFrom('trust_scores as t')
        .select('t.tier')
        .whereRef('t.agent_id', '=', 'a.id')
        .orderBy('t.computed_at', 'desc')
        .orderBy('t.id', 'desc')
        .limit(1)
        .as('trust_tier'),
      eb
        .selectFrom('trust_scores as t')
        .select('t.score')
        .whereRef('t.agent_id', '=', 'a.id')
        .orderBy('t.computed_at', 'desc')
        .orderBy('t.id', 'desc')
        .limit(1)
        .as('trust_score'),
      eb
        .selectFrom('evaluations as e')
        .select((e) => e.fn.max('e.observed_at').as('at'))
        .whereRef('e.agent_id', '=', 'a.id')
        .as('newest_evidence_at'),
    ]);
  if (forAction) {
    q = q.select([
      sql<string | null>`(select i.id::text from incidents i where i.agent_id = a.id and i.status = 'open' limit 1)`.as('open_incident_id'),
      sql<boolean>`exists (select 1 from approval_requests r where r.agent_id = a.id and r.status in ('pending', 'approved'))`.as('has_open_approvals'),
    ]);
  }
  if (ids) q = q.where('a.id', 'in', ids);
  if (filter.versionAbove !== undefined) q = q.where('a.version', '>', filter.versionAbove.toString()).where('a.version', '<=', VERSION_CEILING);
  return q;
}

/**
 * A view's catch-up: every agent above `versionAbove` and the fleet holds (`holdsJson`: those in
 * force, and what became of `knownHolds`), in one statement. One statement is one snapshot: a hold
 * and the records that release it are seen together or not at all, and a hold committed before an
 * agent the read returns is in it too, so one round trip does what a read of the holds before and
 * after the agents' read would.
 */
export async function loadAgentsAboveWithHolds(db: DbOrTrx, versionAbove: bigint, knownHolds: readonly string[]): Promise<{ agents: Agent[]; holds: FleetHold[] }> {
  // At least one row (the holds) even when no agent changed: the agents join it.
  const { rows } = await sql<AgentWithState & { holds_json: FleetHoldJson[] }>`
    select h.holds_json, a.* from (select ${holdsJson(knownHolds)} as holds_json) h
    left join lateral ${agentRowsQuery(db, { versionAbove }, false)} as a on true`.execute(db);
  const agents: Agent[] = [];
  for (const row of rows) if (row.id !== null) agents.push(toAgent(row));
  return { agents, holds: toFleetHolds(rows[0]?.holds_json ?? []) };
}

/** Every agent, for a view's initial load: streamed with COPY from one snapshot (see load-all-agents.ts). */
export { loadAllAgents } from './load-all-agents.js';

function toDate(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  return value instanceof Date ? value : new Date(value as string);
}

export async function loadAgent(db: DbOrTrx, id: string, options: { forUpdate?: boolean } = {}): Promise<Agent | undefined> {
  const [agent] = await loadAgents(db, { ids: [id], forUpdate: options.forUpdate });
  return agent;
}

/** An agent about to be acted on, with what the action needs to know of its other rows. */
export interface ActionSubject {
  agent: Agent;
  /** Its open incident (every step of an incident joins it), if any. */
  openIncidentId: string | null;
  /** Whether it has approval requests a containment would cancel (pending, or approved and maybe unused). */
  hasOpenApprovals: boolean;
}

/**
 * `loadAgent(trx, id, { forUpdate: true })` for an action: the row lock, then one read of the agent,
 * its open incident and whether it has open approval requests (the read follows the lock, so it
 * sees what a transaction it waited for committed).
 */
export async function loadAgentForAction(trx: DbOrTrx, id: string): Promise<ActionSubject | undefined> {
  const [row] = await loadAgentRows(trx, { ids: [id], forUpdate: true }, true);
  if (!row) return undefined;
  return { agent: toAgent(row), openIncidentId: row.open_incident_id ?? null, hasOpenApprovals: row.has_open_approvals === true };
}

/**
 * The policy's `restore.freshEvaluation`: when the agent's open incident has no evaluation observed
 * after it began, when it began (undefined: no open incident, or a fresh evaluation exists).
 */
export async function incidentAwaitingEvaluation(db: DbOrTrx, agentId: string): Promise<Date | undefined> {
  const { rows } = await sql<{ opened_at: Date }>`
    select i.opened_at from incidents i
    where i.agent_id = ${agentId} and i.status = 'open'
      and not exists (select 1 from evaluations e where e.agent_id = i.agent_id and e.observed_at > i.opened_at)
    limit 1`.execute(db);
  return rows[0]?.opened_at;
}

/**
 * Takes the next permission version inside the caller's transaction, in commit order.
 *
 * The number is drawn while holding the audit head's row lock, which every permission-changing
 * transaction takes (through `appendAudit`, or `commitVersionedChanges` for registrations and
 * actions, which draws a batch's versions under one hold) and keeps until it commits. So a transaction can only
 * draw a version after every transaction holding a lower one has committed (or rolled back): one
 * read of `version > N` that sees version M sees every change up to M, and a replica's poll
 * (versions above the highest it holds) can never skip a change whose publish was lost.
 * Call it late in the transaction, after the other row locks it needs, to keep lock order simple
 * (agent row, then the rest, then the audit head).
 */
export async function nextPermissionVersion(trx: DbOrTrx): Promise<bigint> {
  if (!trx.isTransaction) throw new Error('a permission version must be taken inside the transaction that commits it');
  const { rows } = await sql<{ v: string }>`
    select nextval('permission_version_seq')::text as v
    from (select 1 from audit_head where id = 1 for update) as head`.execute(trx);
  return BigInt(rows[0]!.v);
}

/**
 * Gives an agent the next permission version (see `nextPermissionVersion`) in one statement: for
 * changes whose rows are already written, so the audit head is held only from here to the commit.
 */
export async function assignPermissionVersion(trx: DbOrTrx, agentId: string): Promise<bigint> {
  if (!trx.isTransaction) throw new Error('a permission version must be taken inside the transaction that commits it');
  const { rows } = await sql<{ v: string }>`
    update agents set version = next.v
    from (select nextval('permission_version_seq') as v from (select 1 from audit_head where id = 1 for update) as head) as next
    where agents.id = ${agentId}
    returning agents.version::text as v`.execute(trx);
  if (!rows[0]) throw new Error(`cannot version unknown agent ${agentId}`);
  return BigInt(rows[0].v);
}

export async function maxPermissionVersion(db: DbOrTrx): Promise<bigint> {
  const row = await db.selectFrom('agents').select((eb) => eb.fn.max('version').as('v')).executeTakeFirst();
  return row?.v ? BigInt(row.v) : 0n;
}

export interface AgentRegistration {
  id: string;
  name: string;
  owner: string;
  riskTier: RiskTier;
  grants: { scope: string; constraints: GrantConstraints; keepInContainment: boolean; expiresAt: Date | null }[];
}

/** Inserts or updates the agent row and makes its grant set exactly `reg.grants` (by scope). */
export async function saveRegistration(
  trx: DbOrTrx,
  reg: AgentRegistration,
  actor: string,
  now: Date,
  version: bigint,
  status: Agent['status'],
): Promise<void> {
  await trx
    .insertInto('agents')
    .values({
      id: reg.id,
      name: reg.name,
      owner: reg.owner,
      risk_tier: reg.riskTier,
      status,
      version: version.toString(),
      created_by: actor,
      created_at: now,
      updated_by: actor,
      updated_at: now,
    })
    .onConflict((oc) =>
      oc.column('id').doUpdateSet({
        name: reg.name,
        owner: reg.owner,
        risk_tier: reg.riskTier,
        version: version.toString(),
        updated_by: actor,
        updated_at: now,
      }),
    )
    .execute();

  const scopes = reg.grants.map((g) => g.scope);
  let removal = trx
    .updateTable('grants')
    .set({ removed_at: now, removed_by: actor })
    .where('agent_id', '=', reg.id)
    .where('removed_at', 'is', null);
  if (scopes.length) removal = removal.where('scope', 'not in', scopes);
  await removal.execute();

  if (reg.grants.length === 0) return;
  // Every grant in one statement (one round trip, whatever the number of grants).
  await trx
    .insertInto('grants')
    .values(
      reg.grants.map((g) => ({
        agent_id: reg.id,
        scope: g.scope,
        constraints: JSON.stringify(g.constraints),
        keep_in_containment: g.keepInContainment,
        expires_at: g.expiresAt,
        granted_by: actor,
        granted_at: now,
      })),
    )
    .onConflict((oc) =>
      oc.columns(['agent_id', 'scope']).doUpdateSet({
        constraints: (eb) => eb.ref('excluded.constraints'),
        keep_in_containment: (eb) => eb.ref('excluded.keep_in_containment'),
        expires_at: (eb) => eb.ref('excluded.expires_at'),
        // A grant that comes back after removal is a new grant: record who gave it and when.
        granted_by: sql`case when grants.removed_at is null then grants.granted_by else ${actor} end`,
        granted_at: sql`case when grants.removed_at is null then grants.granted_at else ${now} end`,
        removed_at: null,
        removed_by: null,
      }),
    )
    .execute();
}

export async function setAgentState(trx: DbOrTrx, id: string, status: Agent['status'], version: bigint, actor: string, now: Date): Promise<void> {
  await trx
    .updateTable('agents')
    .set({ status, version: version.toString(), updated_by: actor, updated_at: now })
    .where('id', '=', id)
    .execute();
}

/** Removes every grant the agent still has (decommissioning); returns what was removed. */
export async function removeAllGrants(trx: DbOrTrx, agentId: string, actor: string, now: Date): Promise<TouchedGrant[]> {
  const rows = await trx
    .updateTable('grants')
    .set({ removed_at: now, removed_by: actor })
    .where('agent_id', '=', agentId)
    .where('removed_at', 'is', null)
    .returning(['id', 'scope'])
    .execute();
  return rows.map((r) => ({ grantId: r.id, scope: r.scope })).sort((a, b) => (a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : 0));
}

/** Marks the agent decommissioned with its new permission version. */
export async function markDecommissioned(trx: DbOrTrx, id: string, d: { version: bigint; actor: string; reason: string; now: Date }): Promise<void> {
  await trx
    .updateTable('agents')
    .set({
      status: 'decommissioned',
      version: d.version.toString(),
      updated_by: d.actor,
      updated_at: d.now,
      decommissioned_at: d.now,
      decommissioned_by: d.actor,
      decommission_reason: d.reason,
    })
    .where('id', '=', id)
    .execute();
}

/** The rows one action writes before its version is drawn (see `writeActionRows`). */
export interface ActionRows {
  action: {
    id: string;
    agentId: string;
    kind: 'narrow' | 'contain' | 'revoke' | 'restore';
    scopes: string[];
    reason: string;
    actor: string;
    ttlMs: number | null;
    expiresAt: Date | null;
    touched: TouchedGrant[];
    now: Date;
    incidentId: string | null;
    idempotencyKey: string | null;
    result: unknown;
  };
  /** The actions in force this one lifts. */
  lifts: string[];
  status: Agent['status'];
  /** The incident the action opens (never together with `closeIncident`). */
  openIncident: string | null;
  /** The incident that ends with this action (the agent is active after it). */
  closeIncident: string | null;
}

/** What `writeActionRows` answers: the confirmations it cancelled, and the audit head and version it drew. */
export interface ActionRowsWritten {
  /** Restore confirmations that cannot carry over (their thread messages must be updated). */
  cancelled: string[];
  /** The audit head as read under its lock (held from here to the commit), and the action's one permission version. */
  head: DrawnHead;
}

/**
 * One action's rows, in one statement: the incident it opens or ends (and the restore confirmations
 * that cannot carry over, cancelled), the action row, the actions it lifts and the agent's status;
 * and, in the same statement, the audit head's lock and the action's permission version, drawn under
 * it. The action row's stored answer gets that version in the statement too (`jsonb_set`), so a
 * replay answers it as it was. The caller ends the transaction with `commitVersionedChanges(…,
 * head)`, which writes the audit entry and the event without a second trip for the lock.
 *
 * The rows are independent of each other, so one statement (one round trip under the agent's row
 * lock, where there were up to eight) writes them all. Taking the head here keeps the lock order of
 * every permission change (agent row, then the rest, then the audit head): every row this statement
 * writes belongs to the agent whose row the caller holds, and a transaction holding the head only
 * waits for its own commit. Throws unless the action and the status were written.
 */
export async function writeActionRows(trx: DbOrTrx, w: ActionRows): Promise<ActionRowsWritten> {
  if (!trx.isTransaction) throw new Error('an action must be written inside the transaction that commits it');
  const a = w.action;
  // Only a restore ends an incident, and a restore never opens one.
  if (w.openIncident !== null && w.closeIncident !== null) throw new Error('an action cannot open one incident and end another');
  const incident = w.openIncident ?? w.closeIncident;
  const why = w.openIncident ? `incident ${w.openIncident} opened` : `incident ${w.closeIncident} ended`;
  const { rows } = await sql<{ acted: number; state: number; opened: number; closed: number; cancelled: string[]; seq: string; hash: string; version: string }>`
    with head as (select seq, hash from audit_head where id = 1 for update),
    -- Drawn from the locked head's row: after the lock (versions in commit order, see nextPermissionVersion).
    drawn as (select nextval('permission_version_seq') as version from head),
    opened as (
      insert into incidents (id, agent_id, status, opened_by_action_id, opened_at)
      select ${w.openIncident}::uuid, ${a.agentId}, 'open', ${a.id}::uuid, ${a.now}::timestamptz
      where ${w.openIncident}::uuid is not null
      returning 1),
    closed as (
      update incidents set status = 'closed', closed_at = ${a.now}, closed_by = ${a.actor}
      where id = ${w.closeIncident}::uuid
      returning 1),
    cancelled as (
      update confirmations set decided_at = ${a.now}, decided_by = ${a.actor}, outcome = 'cancelled', decided_reason = ${why}
      where ${incident}::uuid is not null and agent_id = ${a.agentId} and kind = 'restore' and decided_at is null
      returning id),
    acted as (
      insert into agent_actions (id, agent_id, kind, scopes, reason, actor, ttl_ms, expires_at, touched_grants, created_at, incident_id, idempotency_key, result)
      select ${a.id}::uuid, ${a.agentId}, ${a.kind}, ${JSON.stringify(a.scopes)}::jsonb, ${a.reason}, ${a.actor}, ${a.ttlMs}::bigint, ${a.expiresAt}::timestamptz,
        ${JSON.stringify(a.touched)}::jsonb, ${a.now}::timestamptz, ${a.incidentId}::uuid, ${a.idempotencyKey}::text,
        jsonb_set(${JSON.stringify(a.result)}::jsonb, '{version}', to_jsonb(drawn.version::text))
      from drawn
      returning 1),
    lifted as (
      update agent_actions set lifted_at = ${a.now}, lifted_by = ${a.actor}, lift_reason = ${a.reason}, lifted_by_action_id = ${a.id}::uuid
      where id = any(${w.lifts}::uuid[]) and lifted_at is null
      returning 1),
    state as (
      update agents set status = ${w.status}, updated_by = ${a.actor}, updated_at = ${a.now} where id = ${a.agentId}
      returning 1)
    select (select count(*) from acted)::int as acted, (select count(*) from state)::int as state,
      (select count(*) from opened)::int as opened, (select count(*) from closed)::int as closed,
      (select coalesce(array_agg(id::text), '{}') from cancelled) as cancelled,
      (select count(*) from lifted)::int as lifted,
      (select seq::text from head) as seq, (select hash from head) as hash, (select version::text from drawn) as version`.execute(trx);
  const done = rows[0];
  if (!done || done.acted !== 1 || done.state !== 1 || done.opened !== (w.openIncident ? 1 : 0) || done.closed !== (w.closeIncident ? 1 : 0) || done.version === null) {
    throw new Error(`the action's rows were not all written: ${JSON.stringify(done)}`);
  }
  return { cancelled: done.cancelled, head: { seq: BigInt(done.seq), hash: done.hash, versions: [BigInt(done.version)] } };
}

export async function liftActions(
  trx: DbOrTrx,
  ids: string[],
  lift: { actor: string; reason: string; byActionId: string | null; now: Date },
): Promise<void> {
  if (ids.length === 0) return;
  await trx
    .updateTable('agent_actions')
    .set({ lifted_at: lift.now, lifted_by: lift.actor, lift_reason: lift.reason, lifted_by_action_id: lift.byActionId })
    .where('id', 'in', ids)
    .where('lifted_at', 'is', null)
    .execute();
}

/** The most recent actions on an agent, newest first, in force or not. */
export async function recentActions(db: DbOrTrx, agentId: string, limit = 10): Promise<AgentActionRow[]> {
  return db
    .selectFrom('agent_actions')
    .selectAll()
    .where('agent_id', '=', agentId)
    .orderBy('created_at', 'desc')
    .limit(limit)
    .execute();
}

/** Actions whose ttl has run out but which are still in force (the sweeper's safety net). */
export async function expiredActionIds(db: DbOrTrx, now: Date, limit = 100): Promise<{ id: string; agent_id: string }[]> {
  return db
    .selectFrom('agent_actions')
    .select(['id', 'agent_id'])
    .where('lifted_at', 'is', null)
    .where('expires_at', 'is not', null)
    .where('expires_at', '<=', now)
    .orderBy('expires_at')
    .limit(limit)
    .execute();
}

/** The answer already given for an idempotency key, if that request was applied before. */
export async function findActionByIdempotencyKey(db: DbOrTrx, key: string): Promise<{ id: string; result: unknown } | undefined> {
  return db.selectFrom('agent_actions').select(['id', 'result']).where('idempotency_key', '=', key).executeTakeFirst();
}

export async function findOpenIncident(db: DbOrTrx, agentId: string): Promise<{ id: string } | undefined> {
  return db.selectFrom('incidents').select('id').where('agent_id', '=', agentId).where('status', '=', 'open').executeTakeFirst();
}

/** Closes an incident and, in the same transaction, the restore confirmations asked during it. */
export async function closeIncident(trx: DbOrTrx, id: string, actor: string, now: Date): Promise<void> {
  const closed = await trx.updateTable('incidents').set({ status: 'closed', closed_at: now, closed_by: actor }).where('id', '=', id).returning('agent_id').executeTakeFirst();
  if (closed) await cancelOpenRestoreConfirmations(trx, closed.agent_id, { actor, reason: `incident ${id} ended`, now });
}
