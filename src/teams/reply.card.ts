import type { ChatReply } from '../chat/reply.js';
import { escapeMarkdown } from './escape.js';

const COLOR: Record<ChatReply['tone'], string> = { info: 'Default', success: 'Good', warning: 'Warning', error: 'Attention' };

/**
 * Renders the neutral reply as an Adaptive Card 1.5 (Teams). Titles and lines mix our words with
 * user-supplied text (names, owners, reasons, justifications, audiences), so they are escaped whole:
 * on Teams a reply shows no Markdown (backticks were never rendered by Teams; the reply's `*bold*`
 * shows as typed). The usage text is ours and stays as it is.
 */
export function replyCard(reply: ChatReply): Record<string, unknown> {
  const body: Record<string, unknown>[] = [{ type: 'TextBlock', text: escapeMarkdown(reply.title), weight: 'Bolder', wrap: true, color: COLOR[reply.tone] }];
  for (const line of reply.lines) body.push({ type: 'TextBlock', text: escapeMarkdown(line), wrap: true, spacing: 'Small' });
  const actions = reply.confirm
    ? [
        { type: 'Action.Execute', title: reply.confirm.label, verb: CONFIRM_VERB, data: { confirmationId: reply.confirm.id }, style: reply.confirm.danger ? 'destructive' : 'positive' },
        { type: 'Action.Execute', title: 'Cancel', verb: CANCEL_VERB, data: { confirmationId: reply.confirm.id } },
      ]
    : [];
  if (reply.usage) body.push({ type: 'TextBlock', text: `Usage:\n\n${reply.usage.split('\n').map((l) => l.replace(/^\/armalo /, '')).join('\n\n')}`, wrap: true, fontType: 'Monospace', isSubtle: true });
  return { type: 'AdaptiveCard', $schema: 'http://adaptivecards.io/schemas/adaptive-card.json', version: '1.5', body, ...(actions.length ? { actions } : {}) };
}

export const CONFIRM_VERB = 'armalo.confirm';
export const CANCEL_VERB = 'armalo.cancel';

export const cardAttachment = (card: Record<string, unknown>) => ({ contentType: 'application/vnd.microsoft.card.adaptive', content: card });
