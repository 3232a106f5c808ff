import type { ChatReply } from '../chat/reply.js';
import { escapeMrkdwn } from './escape.js';

// Kept here too so renderers that imported it from this module keep working: one helper, ./escape.ts.
export { escapeMrkdwn };

/** Block Kit block, loosely typed: we build a handful of shapes and Slack validates them. */
export type Block = Record<string, unknown>;

const ICON: Record<ChatReply['tone'], string> = { info: ':information_source:', success: ':white_check_mark:', warning: ':warning:', error: ':x:' };

export const CONFIRM_ACTION = 'armalo_confirm';
export const CANCEL_ACTION = 'armalo_cancel';

/** Renders the neutral reply into Block Kit, plus the plain-text fallback Slack shows in notifications. */
export function renderReply(reply: ChatReply): { text: string; blocks: Block[] } {
  const blocks: Block[] = [{ type: 'section', text: { type: 'mrkdwn', text: `${ICON[reply.tone]} *${escapeMrkdwn(reply.title)}*` } }];
  if (reply.lines.length) {
    // Sections hold at most 3000 characters.
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: escapeMrkdwn(reply.lines.join('\n')).slice(0, 2900) } });
  }
  if (reply.usage) blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `Usage:\n\`\`\`${escapeMrkdwn(reply.usage)}\`\`\`` }] });
  if (reply.confirm) {
    blocks.push({
      type: 'actions',
      block_id: `confirm:${reply.confirm.id}`,
      elements: [
        {
          type: 'button',
          action_id: CONFIRM_ACTION,
          text: { type: 'plain_text', text: reply.confirm.label.slice(0, 75) },
          value: reply.confirm.id,
          ...(reply.confirm.danger ? { style: 'danger' } : { style: 'primary' }),
        },
        { type: 'button', action_id: CANCEL_ACTION, text: { type: 'plain_text', text: 'Cancel' }, value: reply.confirm.id },
      ],
    });
  }
  // The fallback text is mrkdwn too (it drives notifications): escaped like the blocks.
  return { text: escapeMrkdwn(reply.title), blocks };
}
