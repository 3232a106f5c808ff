// Kept for callers of the old module: the card is built in src/notices/approval.notice.ts and
// rendered by ./render.ts.
import type { ApprovalView } from '../approvals/approvals.service.js';
import { approvalNotice } from '../notices/approval.notice.js';
import { renderTeams } from './render.js';

export { APPROVE_VERB, DENY_VERB, REFRESH_VERB } from './render.js';

/**
 * The approval card for Teams: Adaptive Card 1.5 with Universal Actions. Approvers (refresh.userIds)
 * see Approve and Deny (Deny asks for a reason in the card); everyone else sees the status. `notice`
 * is a refusal shown on top of the copy the clicker gets back.
 */
export const teamsApprovalCard = (view: ApprovalView, agentName: string, options: { approverMris?: string[]; notice?: string } = {}): Record<string, unknown> =>
  renderTeams(approvalNotice(view, agentName, options.notice ? { banner: options.notice } : {}), options.approverMris ? { refreshUserIds: options.approverMris } : {});
