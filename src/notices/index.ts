export * from './model.js';
export { STEP_VERB, stepText, incidentNotice, incidentStepNotice, incidentExpiryNotice } from './incident.notice.js';
export { approvalCount, approvalNotice, approvalReminderNotice, waitingNotice } from './approval.notice.js';
export { announcesTrust, trustNotice } from './trust.notice.js';
export { packetNotice, type PacketNoticeOptions } from './packet.notice.js';
export { confirmationNotice, type ConfirmationRequest } from './confirmation.notice.js';
export { breakGlassNotice, decommissionNotice, policyInvalidNotice } from './admin.notice.js';
export { replyNotice } from './reply.notice.js';
