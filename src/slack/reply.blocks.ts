// Kept for callers of the old module: replies become notices (src/notices/reply.notice.ts),
// rendered by ./render.ts.
import type { ChatReply } from '../chat/reply.js';
import { replyNotice } from '../notices/reply.notice.js';
import { escapeMrkdwn } from './escape.js';
import { renderSlack, type Block } from './render.js';

export { escapeMrkdwn };
export type { Block };
export { CONFIRM_ACTION, CANCEL_ACTION, MORE_ACTION } from './render.js';

/** Renders a command's answer into Block Kit, plus the plain-text fallback Slack shows in notifications. */
export const renderReply = (reply: ChatReply): { text: string; blocks: Block[] } => renderSlack(replyNotice(reply));
