import type { ChatReply } from '../chat/reply.js';
import { escapeMrkdwn } from './escape.js';

// Kept here too so renderers that imported it from this module keep working: one helper, ./escape.ts.
export { escapeMrkdwn };

/** Block Kit block, loosely typed: we build a handful of shapes and Slack validates them. */
export type Block = Record<string, unknown>;

const ICON: Record<ChatReply['tone'], string> = { info: ':information_source:', success: ':white_check_mark:', warning: ':warning:', error: ':x:' };

export const CONFIRM_ACTION = 'armalo_confirm';
export const CANCEL_ACTION = 'armalo_cancel';
/** The "more" button of a listing: its value is the command that shows the next page. */
export const MORE_ACTION = 'armalo_more';

const SECTION_LIMIT = 2900;
/** Slack refuses a message of more than 50 blocks: a few go to the title, usage and buttons. */
const MAX_LINE_SECTIONS = 45;

/** Lines joined into sections of at most SECTION_LIMIT characters, breaking between lines where it can. */
function sections(lines: string[]): string[] {
  const out: string[] = [];
  let current = '';
  for (const line of lines) {
    const piece = line.slice(0, SECTION_LIMIT);
    if (current && current.length + 1 + piece.length > SECTION_LIMIT) {
      out.push(current);
      current = '';
    }
    current = current ? `${current}\n${piece}` : piece;
  }
  if (current) out.push(current);
  return out.slice(0, MAX_LINE_SECTIONS);
}

/** Renders the neutral reply into Block Kit, plus the plain-text fallback Slack shows in notifications. */
export function renderReply(reply: ChatReply): { text: string; blocks: Block[] } {
  const blocks: Block[] = [{ type: 'section', text: { type: 'mrkdwn', text: `${ICON[reply.tone]} *${escapeMrkdwn(reply.title)}*` } }];
  // Sections hold at most 3000 characters: long answers (listings) continue in further sections.
  for (const text of sections(reply.lines.map(escapeMrkdwn))) blocks.push({ type: 'section', text: { type: 'mrkdwn', text } });
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
  if (reply.more) {
    blocks.push({
      type: 'actions',
      block_id: 'more',
      // The value is the command text of the next page (at most 2000 characters in Slack).
      elements: [{ type: 'button', action_id: MORE_ACTION, text: { type: 'plain_text', text: reply.more.label.slice(0, 75) }, value: reply.more.command.slice(0, 2000) }],
    });
  }
  // The fallback text is mrkdwn too (it drives notifications): escaped like the blocks.
  return { text: escapeMrkdwn(reply.title), blocks };
}
