import { sql } from 'kysely';
import type { DbOrTrx } from '../db/database.js';
import type { OpenApproval } from '../domain/agent.js';

/**
 * The approval requests the decision path may need, for the in-memory view: pending ones, and
 * approved ones not used up at `now` (single use and not consumed, or inside their grant window).
 * One query, for some agents or for all of them.
 */
export async function loadOpenApprovals(db: DbOrTrx, now: Date, agentIds?: readonly string[]): Promise<OpenApproval[]> {
  if (agentIds && agentIds.length === 0) return [];
  let q = db
    .selectFrom('approval_requests')
    .select(['id', 'agent_id', 'action', 'context', 'status', 'created_at', 'decided_at', 'grant_until'])
    .where((eb) =>
      eb.or([
        eb('status', '=', 'pending'),
        eb.and([eb('status', '=', 'approved'), eb.or([eb('grant_until', '>', now), eb.and([eb('grant_until', 'is', null), eb('consumed_at', 'is', null)])])]),
      ]),
    );
  if (agentIds) q = q.where('agent_id', 'in', [...agentIds]);
  const rows = await q.execute();
  return rows.map((r) => ({
    id: r.id,
    agentId: r.agent_id,
    action: r.action,
    context: r.context,
    status: r.status as OpenApproval['status'],
    createdAt: r.created_at,
    decidedAt: r.decided_at,
    grantUntil: r.grant_until,
  }));
}

/**
 * The agents whose approval requests were written (inserted or updated) by a transaction the read
 * at `since` could not see, and the horizon to pass next time; one statement, one snapshot (see
 * migration 0022). Without `since`, only the horizon: take it before a full read of the open
 * requests, and every write that read missed is found from it.
 */
export async function approvalsWrittenSince(db: DbOrTrx, since: string | undefined): Promise<{ horizon: string; agentIds: string[] }> {
  const { rows } = await sql<{ horizon: string; agents: string[] | null }>`
    select pg_snapshot_xmin(pg_current_snapshot())::text as horizon,
      ${since === undefined ? sql`null::text[]` : sql`(select array_agg(distinct agent_id) from approval_requests where written_xid >= ${since}::xid8)`} as agents`.execute(db);
  const row = rows[0]!;
  return { horizon: row.horizon, agentIds: row.agents ?? [] };
}

/**
 * Uses up the first of these single-use approvals that is still unused, in one statement: of two
 * replicas (or two requests) racing for the same approval exactly one gets its id back. The oldest
 * decided candidate goes first; a row another transaction holds is skipped, not waited for.
 */
export async function consumeApproval(db: DbOrTrx, agentId: string, candidateIds: readonly string[], now: Date): Promise<string | undefined> {
  if (candidateIds.length === 0) return undefined;
  const row = await db
    .updateTable('approval_requests')
    .set({ consumed_at: now })
    .where('id', '=', (eb) =>
      eb
        .selectFrom('approval_requests')
        .select('id')
        .where('id', 'in', [...candidateIds])
        .where('agent_id', '=', agentId)
        .where('status', '=', 'approved')
        .where('grant_until', 'is', null)
        .where('consumed_at', 'is', null)
        .orderBy('decided_at')
        .limit(1)
        .forUpdate()
        .skipLocked(),
    )
    .where('consumed_at', 'is', null)
    .returning('id')
    .executeTakeFirst();
  return row?.id;
}
