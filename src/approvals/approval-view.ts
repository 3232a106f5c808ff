import type { Selectable } from 'kysely';
import type { ApprovalDecisionsTable, ApprovalRequestsTable } from '../db/schema.js';
import type { Person } from '../domain/approval-route.js';
import type { ApprovalView } from './approvals.service.js';

/** How a route person is shown: their first email, else their Slack or Teams id. */
export const describePerson = (p: Person) => p.emails[0] ?? (p.slack[0] ? `slack:${p.slack[0]}` : `teams:${p.teams[0]}`);

/**
 * An approval request as the API shows it (`GET /v1/approval-requests/{id}` and each item of the
 * listing): its stored row and its decisions, oldest first.
 */
export function toApprovalView(row: Selectable<ApprovalRequestsTable>, decisions: readonly Selectable<ApprovalDecisionsTable>[]): ApprovalView {
  const route = row.route;
  return {
    id: row.id,
    agentId: row.agent_id,
    action: row.action,
    context: row.context,
    justification: row.justification,
    requestedBy: row.requested_by,
    status: row.status,
    route: {
      ruleId: route.ruleId,
      matched: route.matched,
      quorum: route.requirements.reduce((n, r) => n + r.count, 0),
      requirements: route.requirements.map((r) => ({ ruleId: r.ruleId, roles: r.roles, count: r.count, approvers: r.people.map((k) => describePerson(route.people[k]!)) })),
      escalated: row.escalated_at !== null,
      channel: route.channel,
      why: route.why ?? {},
      trust: {
        score: route.trust?.score ?? null,
        tier: route.trust?.tier ?? null,
        evidenceAgeDays: route.trust?.evidenceAgeMs == null ? null : Math.floor(route.trust.evidenceAgeMs / 86_400_000),
      },
    },
    decisions: decisions.map((d) => ({ by: d.actor, decision: d.decision, reason: d.reason, at: d.at.toISOString(), via: d.via })),
    createdAt: row.created_at.toISOString(),
    expiresAt: row.expires_at.toISOString(),
    decidedAt: row.decided_at?.toISOString() ?? null,
    finalReason: row.final_reason,
    grantUntil: row.grant_until?.toISOString() ?? null,
  };
}
