import type { ApprovalView } from '../approvals/approvals.service.js';
import { escapeMarkdown as md } from './escape.js';

export const APPROVE_VERB = 'armalo.approve';
export const DENY_VERB = 'armalo.deny';
export const REFRESH_VERB = 'armalo.refresh';

const FINAL: Record<string, string> = {
  approved: 'APPROVED',
  denied: 'DENIED',
  expired: 'EXPIRED (no decision in time; this is not a denial)',
  cancelled: 'CANCELLED',
};

/**
 * The approval card for Teams: Adaptive Card 1.5 with Universal Actions. Approvers (refresh.userIds)
 * see Approve and Deny (Deny asks for a reason in the card); everyone else sees the status. After
 * every decision the card refreshes for approvers, and the invoke response carries the new card.
 */
export function teamsApprovalCard(view: ApprovalView, agentName: string, options: { approverMris?: string[]; notice?: string } = {}): Record<string, unknown> {
  const pending = view.status === 'pending';
  const approvals = view.decisions.filter((d) => d.decision === 'approve').length;
  const body: Record<string, unknown>[] = [];
  if (options.notice) body.push({ type: 'TextBlock', text: md(options.notice), wrap: true, color: 'Attention', weight: 'Bolder' });
  body.push({
    type: 'TextBlock',
    text: pending ? `Approval needed: ${md(agentName)} (${md(view.agentId)}) wants to ${md(view.action)}` : `${FINAL[view.status]}: ${md(agentName)} (${md(view.agentId)}) ${md(view.action)}`,
    weight: 'Bolder',
    size: 'Medium',
    wrap: true,
    color: pending ? 'Default' : view.status === 'approved' ? 'Good' : 'Attention',
  });
  const t = view.route.trust;
  // FactSet values render Markdown in Teams too: every user-supplied value is escaped.
  body.push({
    type: 'FactSet',
    facts: [
      { title: 'Context', value: Object.entries(view.context).map(([k, v]) => `${md(k)}: ${md(typeof v === 'string' ? v : JSON.stringify(v))}`).join(', ') || 'none' },
      { title: 'Why', value: md(view.justification) },
      { title: 'Requested by', value: `${md(view.requestedBy)} (rule ${md(view.route.ruleId)})` },
      { title: 'Approvals', value: `${approvals} of ${view.route.quorum}${view.route.escalated ? ' (escalated)' : ''}` },
      { title: 'Trust', value: `${t.score === null ? 'no score yet' : `score ${t.score} (${t.tier})`}; ${t.evidenceAgeDays === null ? 'no evaluation evidence' : `newest evidence ${t.evidenceAgeDays} days old`}` },
    ],
  });
  for (const ruleId of view.route.matched.filter((m) => m !== view.route.ruleId)) {
    body.push({ type: 'TextBlock', text: `Route tightened by ${md(ruleId)}: ${md((view.route.why[ruleId] ?? []).join(', '))}`, wrap: true, isSubtle: true });
  }
  for (const d of view.decisions) {
    body.push({ type: 'TextBlock', text: `${md(d.by)} ${d.decision === 'approve' ? 'approved' : 'denied'}${d.reason ? `: ${md(d.reason)}` : ''} (${d.at}, via ${md(d.via)})`, wrap: true, spacing: 'Small' });
  }
  if (!pending && view.finalReason) body.push({ type: 'TextBlock', text: md(view.finalReason), wrap: true, isSubtle: true });
  body.push({ type: 'TextBlock', text: `Request ${view.id}`, isSubtle: true, size: 'Small', wrap: true });
  const data = { requestId: view.id };
  return {
    type: 'AdaptiveCard',
    $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    version: '1.5',
    ...(options.approverMris?.length && pending ? { refresh: { action: { type: 'Action.Execute', verb: REFRESH_VERB, data }, userIds: options.approverMris } } : {}),
    body,
    actions: pending
      ? [
          { type: 'Action.Execute', title: 'Approve', verb: APPROVE_VERB, data, style: 'positive' },
          {
            type: 'Action.ShowCard',
            title: 'Deny…',
            card: {
              type: 'AdaptiveCard',
              version: '1.5',
              body: [{ type: 'Input.Text', id: 'reason', label: 'Reason (everyone on the request sees it)', isMultiline: true, isRequired: true, errorMessage: 'A reason is required', maxLength: 2000 }],
              actions: [{ type: 'Action.Execute', title: 'Deny', verb: DENY_VERB, data, style: 'destructive' }],
            },
          },
        ]
      : [],
  };
}
