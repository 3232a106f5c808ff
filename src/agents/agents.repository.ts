import { sql } from 'kysely';
import type { DbOrTrx } from '../db/database.js';
import type { AgentActionRow, AgentRow, GrantRow } from '../db/schema.js';
import type { ActiveAction, Agent, GrantConstraints, RestrictingKind, RiskTier, TouchedGrant } from '../domain/agent.js';
import type { TrustTier } from '../domain/trust-score.js';
import { deriveStatus } from '../domain/agent.js';
import { cancelOpenRestoreConfirmations } from '../confirmations/confirmations.repository.js';

function toAgent(row: AgentRow, grants: GrantRow[], actions: AgentActionRow[]): Agent {
  const activeActions: ActiveAction[] = actions.map((a) => ({
    id: a.id,
    kind: a.kind as RestrictingKind,
    scopes: a.scopes,
    reason: a.reason,
    actor: a.actor,
    createdAt: a.created_at,
    expiresAt: a.expires_at,
    touched: a.touched_grants,
  }));
  return {
    id: row.id,
    name: row.name,
    owner: row.owner,
    riskTier: row.risk_tier,
    // Stored status is derived from the actions in force; derive again so a reader never disagrees.
    status: deriveStatus(activeActions),
    version: BigInt(row.version),
    updatedAt: row.updated_at,
    grants: grants.map((g) => ({
      id: g.id,
      scope: g.scope,
      constraints: g.constraints as GrantConstraints,
      keepInContainment: g.keep_in_containment,
      expiresAt: g.expires_at,
      grantedBy: g.granted_by,
      grantedAt: g.granted_at,
    })),
    activeActions,
  };
}

/** Loads agents with their current grants and the actions in force. */
export async function loadAgents(
  db: DbOrTrx,
  filter: { ids?: string[]; versionAbove?: bigint; forUpdate?: boolean },
): Promise<Agent[]> {
  let q = db.selectFrom('agents').selectAll();
  if (filter.ids) {
    if (filter.ids.length === 0) return [];
    q = q.where('id', 'in', filter.ids);
  }
  if (filter.versionAbove !== undefined) q = q.where('version', '>', filter.versionAbove.toString());
  if (filter.forUpdate) q = q.forUpdate();
  const rows = await q.execute();
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const [grants, actions, tiers, newest] = await Promise.all([
    db
      .selectFrom('grants')
      .selectAll()
      .where('agent_id', 'in', ids)
      .where('removed_at', 'is', null)
      .orderBy('scope')
      .execute(),
    db
      .selectFrom('agent_actions')
      .selectAll()
      .where('agent_id', 'in', ids)
      .where('lifted_at', 'is', null)
      .where('kind', '!=', 'restore')
      .orderBy('created_at')
      .execute(),
    // The latest trust score and tier of each agent (grants may require a minimum tier; routing
    // rules match on tier and score).
    sql<{ agent_id: string; tier: string; score: number }>`
      select distinct on (agent_id) agent_id, tier, score from trust_scores
      where agent_id in (${sql.join(ids)})
      order by agent_id, computed_at desc, id desc`.execute(db),
    // The newest evidence of each agent (routing's evidenceOlderThan).
    db
      .selectFrom('evaluations')
      .select('agent_id')
      .select((eb) => eb.fn.max('observed_at').as('at'))
      .where('agent_id', 'in', ids)
      .groupBy('agent_id')
      .execute(),
  ]);
  const trust = new Map(tiers.rows.map((t) => [t.agent_id, t]));
  const evidence = new Map(newest.map((e) => [e.agent_id, e.at]));
  return rows.map((row) => ({
    ...toAgent(
      row,
      grants.filter((g) => g.agent_id === row.id),
      actions.filter((a) => a.agent_id === row.id),
    ),
    trustTier: (trust.get(row.id)?.tier as TrustTier | undefined) ?? null,
    trustScore: trust.get(row.id)?.score ?? null,
    newestEvidenceAt: toDate(evidence.get(row.id)),
  }));
}

function toDate(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  return value instanceof Date ? value : new Date(value as string);
}

export async function loadAgent(db: DbOrTrx, id: string, options: { forUpdate?: boolean } = {}): Promise<Agent | undefined> {
  const [agent] = await loadAgents(db, { ids: [id], forUpdate: options.forUpdate });
  return agent;
}

/**
 * Takes the next permission version inside the caller's transaction, in commit order.
 *
 * The number is drawn while holding the audit head's row lock, which every permission-changing
 * transaction takes (through `appendAudit`) and keeps until it commits. So a transaction can only
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

  for (const g of reg.grants) {
    await trx
      .insertInto('grants')
      .values({
        agent_id: reg.id,
        scope: g.scope,
        constraints: JSON.stringify(g.constraints),
        keep_in_containment: g.keepInContainment,
        expires_at: g.expiresAt,
        granted_by: actor,
        granted_at: now,
      })
      .onConflict((oc) =>
        oc.columns(['agent_id', 'scope']).doUpdateSet({
          constraints: JSON.stringify(g.constraints),
          keep_in_containment: g.keepInContainment,
          expires_at: g.expiresAt,
          // A grant that comes back after removal is a new grant: record who gave it and when.
          granted_by: sql`case when grants.removed_at is null then grants.granted_by else ${actor} end`,
          granted_at: sql`case when grants.removed_at is null then grants.granted_at else ${now} end`,
          removed_at: null,
          removed_by: null,
        }),
      )
      .execute();
  }
}

export async function setAgentState(trx: DbOrTrx, id: string, status: Agent['status'], version: bigint, actor: string, now: Date): Promise<void> {
  await trx
    .updateTable('agents')
    .set({ status, version: version.toString(), updated_by: actor, updated_at: now })
    .where('id', '=', id)
    .execute();
}

export async function insertAction(
  trx: DbOrTrx,
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
  },
): Promise<void> {
  await trx
    .insertInto('agent_actions')
    .values({
      id: action.id,
      agent_id: action.agentId,
      kind: action.kind,
      scopes: JSON.stringify(action.scopes),
      reason: action.reason,
      actor: action.actor,
      ttl_ms: action.ttlMs,
      expires_at: action.expiresAt,
      touched_grants: JSON.stringify(action.touched),
      created_at: action.now,
      incident_id: action.incidentId,
      idempotency_key: action.idempotencyKey,
      result: JSON.stringify(action.result),
    })
    .execute();
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

/** Opens an incident; restore confirmations still open from before cannot carry over into it. */
export async function openIncident(trx: DbOrTrx, id: string, agentId: string, actionId: string, now: Date, actor = 'system'): Promise<void> {
  await trx.insertInto('incidents').values({ id, agent_id: agentId, status: 'open', opened_by_action_id: actionId, opened_at: now }).execute();
  await cancelOpenRestoreConfirmations(trx, agentId, { actor, reason: `incident ${id} opened`, now });
}

/** Closes an incident and, in the same transaction, the restore confirmations asked during it. */
export async function closeIncident(trx: DbOrTrx, id: string, actor: string, now: Date): Promise<void> {
  const closed = await trx.updateTable('incidents').set({ status: 'closed', closed_at: now, closed_by: actor }).where('id', '=', id).returning('agent_id').executeTakeFirst();
  if (closed) await cancelOpenRestoreConfirmations(trx, closed.agent_id, { actor, reason: `incident ${id} ended`, now });
}
