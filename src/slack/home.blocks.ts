import type { types } from '@slack/bolt';
import type { ApprovalView } from '../approvals/approvals.service.js';
import { escapeMrkdwn } from './escape.js';

const line = (v: ApprovalView) => {
  const amount = typeof v.context.amount === 'number' ? ` (amount ${v.context.amount})` : '';
  return `\`${escapeMrkdwn(v.agentId)}\` → \`${escapeMrkdwn(v.action)}\`${amount}: ${escapeMrkdwn(v.justification.slice(0, 200))}`;
};

/** The App Home tab: what waits on you, and what you decided lately. */
export function homeView(waiting: ApprovalView[], decided: ApprovalView[], actor: string): types.HomeView {
  const blocks: types.KnownBlock[] = [{ type: 'header', text: { type: 'plain_text', text: 'Waiting on you' } }];
  if (waiting.length === 0) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: '_Nothing waits on you._' } });
  for (const v of waiting) {
    const done = v.decisions.filter((d) => d.decision === 'approve').length;
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: `${line(v)}\n${done} of ${v.route.quorum} approvals · expires ${v.expiresAt}` },
    });
    blocks.push({
      type: 'actions',
      block_id: `approval:${v.id}`,
      elements: [
        { type: 'button', action_id: 'armalo_approve', style: 'primary', text: { type: 'plain_text', text: 'Approve' }, value: v.id },
        { type: 'button', action_id: 'armalo_deny', style: 'danger', text: { type: 'plain_text', text: 'Deny…' }, value: v.id },
      ],
    });
  }
  blocks.push({ type: 'divider' }, { type: 'header', text: { type: 'plain_text', text: 'Recently decided' } });
  if (decided.length === 0) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: '_Nothing yet._' } });
  for (const v of decided) {
    const mine = v.decisions.find((d) => d.by === actor);
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: `${line(v)}\nyou ${mine?.decision === 'deny' ? 'denied' : 'approved'}${mine?.at ? ` at ${mine.at}` : ''} · now *${v.status}*` },
    });
  }
  return { type: 'home', blocks: blocks.slice(0, 100) };
}
