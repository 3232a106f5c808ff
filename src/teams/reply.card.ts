import type { ChatReply } from '../chat/reply.js';

const COLOR: Record<ChatReply['tone'], string> = { info: 'Default', success: 'Good', warning: 'Warning', error: 'Attention' };

/** Renders the neutral reply as an Adaptive Card 1.5 (Teams). */
export function replyCard(reply: ChatReply): Record<string, unknown> {
  const body: Record<string, unknown>[] = [{ type: 'TextBlock', text: reply.title, weight: 'Bolder', wrap: true, color: COLOR[reply.tone] }];
  for (const line of reply.lines) body.push({ type: 'TextBlock', text: line, wrap: true, spacing: 'Small' });
  if (reply.usage) body.push({ type: 'TextBlock', text: `Usage:\n\n${reply.usage.split('\n').map((l) => l.replace(/^\/armalo /, '')).join('\n\n')}`, wrap: true, fontType: 'Monospace', isSubtle: true });
  return { type: 'AdaptiveCard', $schema: 'http://adaptivecards.io/schemas/adaptive-card.json', version: '1.5', body };
}

export const cardAttachment = (card: Record<string, unknown>) => ({ contentType: 'application/vnd.microsoft.card.adaptive', content: card });
