// Kept for callers of the old module: the content is src/notices/approval.notice.ts's waitingNotice,
// rendered by ./render.ts.
import type { types } from '@slack/bolt';
import type { ApprovalView } from '../approvals/approvals.service.js';
import { waitingNotice } from '../notices/approval.notice.js';
import { renderSlackHome } from './render.js';

/** The App Home tab: what waits on you, and what you decided lately. */
export const homeView = (waiting: ApprovalView[], decided: ApprovalView[], actor: string): types.HomeView => renderSlackHome(waitingNotice(waiting, decided, actor));
