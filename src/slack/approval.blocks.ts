// Kept for callers of the old module: the card is built in src/notices/approval.notice.ts and
// rendered by ./render.ts (which also holds the deny modal and the action ids).
import type { ApprovalView } from '../approvals/approvals.service.js';
import { approvalNotice } from '../notices/approval.notice.js';
import { renderSlack, type Block } from './render.js';

export { APPROVE_ACTION, DENY_ACTION, DENY_MODAL, denyModal } from './render.js';

/** The approval card: the same for every copy (DMs and the channel), updated after every change. */
export const approvalCard = (view: ApprovalView, agentName: string): { text: string; blocks: Block[] } => renderSlack(approvalNotice(view, agentName));
