// Kept for callers of the old module: replies become notices (src/notices/reply.notice.ts),
// rendered by ./render.ts.
import type { ChatReply } from '../chat/reply.js';
import { replyNotice } from '../notices/reply.notice.js';
import { renderTeams } from './render.js';

export { CONFIRM_VERB, CANCEL_VERB, cardAttachment } from './render.js';

/** A command's answer as an Adaptive Card 1.5. */
export const replyCard = (reply: ChatReply): Record<string, unknown> => renderTeams(replyNotice(reply));
