import type { types } from '@slack/bolt';
import type { ApprovalView } from '../approvals/approvals.service.js';
import { slackActor } from './incident.blocks.js';
import { escapeMrkdwn } from './escape.js';
import type { Block } from './reply.blocks.js';

export const APPROVE_ACTION = 'armalo_approve';
export const DENY_ACTION = 'armalo_deny';
export const DENY_MODAL = 'armalo_deny_modal';

const FINAL: Record<string, string> = {
  approved: ':white_check_mark: *APPROVED*',
  denied: ':no_entry: *DENIED*',
  expired: ':hourglass: *EXPIRED* (no decision in time; this is not a denial)',
  cancelled: ':heavy_multiplication_x: *CANCELLED*',
};

function contextText(context: Record<string, unknown>): string {
  const entries = Object.entries(context);
  if (!entries.length) return 'none';
  return entries.map(([k, v]) => `${escapeMrkdwn(k)}: \`${escapeMrkdwn(typeof v === 'string' ? v : JSON.stringify(v))}\``).join(', ').slice(0, 1000);
}

function trustLine(view: ApprovalView): string {
  const t = view.route.trust;
  const score = t.score === null ? 'no score yet' : `score ${t.score} (${t.tier})`;
  const evidence = t.evidenceAgeDays === null ? 'no evaluation evidence' : `newest evidence ${t.evidenceAgeDays} day${t.evidenceAgeDays === 1 ? '' : 's'} old`;
  return `*Trust:* ${score} · ${evidence}`;
}

/** The approval card: the same for every copy (DMs and the channel), updated after every change. */
export function approvalCard(view: ApprovalView, agentName: string): { text: string; blocks: Block[] } {
  const approvals = view.decisions.filter((d) => d.decision === 'approve').length;
  const pending = view.status === 'pending';
  const header = pending
    ? `:raised_hand: *Approval needed:* ${escapeMrkdwn(agentName)} (\`${escapeMrkdwn(view.agentId)}\`) wants to \`${escapeMrkdwn(view.action)}\``
    : `${FINAL[view.status]}: ${escapeMrkdwn(agentName)} (\`${escapeMrkdwn(view.agentId)}\`) \`${escapeMrkdwn(view.action)}\``;
  const lines = [
    `*Context:* ${contextText(view.context)}`,
    `*Why:* ${escapeMrkdwn(view.justification)}`,
    `*Requested by:* ${slackActor(view.requestedBy)} · rule \`${escapeMrkdwn(view.route.ruleId)}\`${view.route.matched.length > 1 ? ` (also matched: ${view.route.matched.filter((m) => m !== view.route.ruleId).map((m) => `\`${escapeMrkdwn(m)}\``).join(', ')})` : ''}`,
    `*Approvals:* ${approvals} of ${view.route.quorum}${view.route.escalated ? ' · :arrow_double_up: escalated' : ''}`,
    trustLine(view),
  ];
  const tightened = view.route.matched.filter((m) => m !== view.route.ruleId);
  for (const ruleId of tightened) lines.push(`*Route tightened by* \`${escapeMrkdwn(ruleId)}\`: ${escapeMrkdwn((view.route.why[ruleId] ?? []).join(', '))}`);
  for (const d of view.decisions) {
    lines.push(`${d.decision === 'approve' ? ':white_check_mark:' : ':no_entry:'} ${slackActor(d.by)} ${d.decision === 'approve' ? 'approved' : 'denied'}${d.reason ? `: ${escapeMrkdwn(d.reason)}` : ''} (${d.at})`);
  }
  if (!pending && view.finalReason) lines.push(`_${escapeMrkdwn(view.finalReason)}_`);
  const blocks: Block[] = [
    { type: 'section', text: { type: 'mrkdwn', text: header } },
    { type: 'section', text: { type: 'mrkdwn', text: lines.join('\n').slice(0, 2900) } },
  ];
  if (pending) {
    blocks.push({
      type: 'actions',
      block_id: `approval:${view.id}`,
      elements: [
        { type: 'button', action_id: APPROVE_ACTION, style: 'primary', text: { type: 'plain_text', text: 'Approve' }, value: view.id },
        { type: 'button', action_id: DENY_ACTION, style: 'danger', text: { type: 'plain_text', text: 'Deny…' }, value: view.id },
      ],
    });
  }
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: pending ? `Expires ${view.expiresAt} · request ${view.id}` : `Request ${view.id}` }] });
  const fallback = pending ? `Approval needed: ${view.agentId} wants to ${view.action}` : `${view.status}: ${view.agentId} ${view.action}`;
  return { text: escapeMrkdwn(fallback), blocks };
}

/** The modal a denial goes through: a reason is required. */
export function denyModal(requestId: string, agentId: string, action: string): types.ModalView {
  return {
    type: 'modal',
    callback_id: DENY_MODAL,
    private_metadata: requestId,
    title: { type: 'plain_text', text: 'Deny request' },
    submit: { type: 'plain_text', text: 'Deny' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `Deny \`${escapeMrkdwn(agentId)}\` → \`${escapeMrkdwn(action)}\`?` } },
      { type: 'input', block_id: 'reason', label: { type: 'plain_text', text: 'Reason (shown to everyone on the request)' }, element: { type: 'plain_text_input', action_id: 'reason_input', multiline: true, min_length: 3, max_length: 2000 } },
    ],
  };
}
