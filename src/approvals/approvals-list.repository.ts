import { sql } from 'kysely';
import type { DbOrTrx } from '../db/database.js';
import type { ApprovalStatus } from '../db/schema.js';
import type { ApprovalView } from './approvals.service.js';
import { toApprovalView } from './approval-view.js';

/** A person as the `approver` filter names them (emails and Teams ids lower-cased). */
export interface ApproverIdentity {
  kind: 'slack' | 'teams' | 'email';
  id: string;
}

export interface ApprovalListFilter {
  status?: ApprovalStatus;
  agentId?: string;
  approver?: ApproverIdentity;
}

/** Where a route person keeps this kind of identity (policy emails and Teams ids are stored lower-cased). */
const FIELD: Record<ApproverIdentity['kind'], string> = { slack: 'slack', teams: 'teams', email: 'emails' };

/**
 * One page of approval requests, newest first (by creation time, then id), in the shape of
 * `GET /v1/approval-requests/{id}` (ApprovalService.get): two statements for the whole page.
 *
 * `approver` matches a request when a person its route asks to decide (in `route.requirements`,
 * fixed from the policy when the request was made) has that identity, or when a decision on it was
 * recorded by that chat user or by a route person with that identity.
 */
export async function listApprovals(
  db: DbOrTrx,
  filter: ApprovalListFilter,
  page: { limit: number; after?: { at: string; id: string } },
): Promise<{ items: ApprovalView[]; nextAfter: { at: string; id: string } | null }> {
  let q = db
    .selectFrom('approval_requests as r')
    .selectAll('r')
    .select(sql<string>`to_char(r.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as('created_at_exact'));
  if (filter.status) q = q.where('r.status', '=', filter.status);
  if (filter.agentId !== undefined) q = q.where('r.agent_id', '=', filter.agentId);
  if (filter.approver) {
    const field = FIELD[filter.approver.kind];
    const identity = filter.approver.id;
    const actor = filter.approver.kind === 'email' ? null : `${filter.approver.kind}:${identity}`;
    q = q.where(sql<boolean>`(
      exists (
        select 1 from jsonb_array_elements(r.route->'requirements') req, jsonb_array_elements_text(req->'people') k
        where coalesce(r.route->'people'->k->${field}, '[]'::jsonb) @> jsonb_build_array(${identity}::text))
      or exists (
        select 1 from approval_decisions d where d.request_id = r.id
          and (lower(d.actor) = lower(${actor}::text)
            or coalesce(r.route->'people'->d.person_key->${field}, '[]'::jsonb) @> jsonb_build_array(${identity}::text))))`);
  }
  if (page.after) q = q.where(sql<boolean>`(r.created_at, r.id) < (${page.after.at}::timestamptz, ${page.after.id}::uuid)`);
  const rows = await q.orderBy('r.created_at', 'desc').orderBy('r.id', 'desc').limit(page.limit + 1).execute();
  const shown = rows.slice(0, page.limit);
  const decisions = shown.length
    ? await db.selectFrom('approval_decisions').selectAll().where('request_id', 'in', shown.map((r) => r.id)).orderBy('at').execute()
    : [];
  const decisionsOf = new Map<string, typeof decisions>();
  for (const d of decisions) {
    const list = decisionsOf.get(d.request_id);
    if (list) list.push(d);
    else decisionsOf.set(d.request_id, [d]);
  }
  const items: ApprovalView[] = shown.map((row) => toApprovalView(row, decisionsOf.get(row.id) ?? []));
  const last = shown[shown.length - 1];
  return { items, nextAfter: rows.length > page.limit && last ? { at: last.created_at_exact, id: last.id } : null };
}
