import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { z } from 'zod';
import { BREAK_GLASS_NOTICE_JOB, DECOMMISSION_NOTICE_JOB, INCIDENT_UPDATE_JOB } from '../src/agents/agents.service.js';
import { CONFIRMATION_REQUEST_JOB } from '../src/chat/chat-commands.js';
import { APPROVAL_CARDS_JOB } from '../src/approvals/approvals.service.js';
import { TRUST_NOTICE_JOB, type TrustNotice } from '../src/trust/trust.service.js';
import { PACKET_DELIVERY_JOB } from '../src/packets/packets.service.js';
import type { SlackNotifier } from '../src/slack/slack-notifier.js';
import { SlackRateLimited } from '../src/slack/slack-notifier.js';
import type { SlackDirectory } from '../src/slack/slack-directory.js';
import { SLACK_DIRECTORY_JOB, SLACK_HOME_JOB } from '../src/slack/slack-directory.js';
import type { WebClient } from '@slack/web-api';
import { POLICY_INVALID_NOTICE_JOB } from '../src/policy/policy-watcher.js';
import { TeamsThrottled, type TeamsNotifier } from '../src/teams/teams-notifier.js';

const incidentUpdatePayload = z.object({ incidentId: z.uuid(), actionId: z.uuid(), event: z.enum(['action', 'expired']) });
const confirmationPayload = z.object({ confirmationId: z.uuid() });
const breakGlassPayload = z.object({ agentId: z.string().min(1), actionId: z.uuid(), actor: z.string(), reason: z.string(), incidentId: z.uuid().nullable(), at: z.string() });
const decommissionPayload = z.object({ agentId: z.string().min(1), actor: z.string(), reason: z.string(), at: z.string() });
const trustNoticePayload = z.discriminatedUnion('kind', [
  z.object({ agentId: z.string(), key: z.string(), kind: z.literal('score'), score: z.number(), tier: z.string(), previousScore: z.number().nullable(), previousTier: z.string().nullable() }),
  z.object({ agentId: z.string(), key: z.string(), kind: z.literal('violation'), pactId: z.string(), severity: z.string(), description: z.string().nullable(), evidenceUrl: z.string().nullable() }),
  z.object({ agentId: z.string(), key: z.string(), kind: z.literal('stale'), newestEvidence: z.string(), ageDays: z.number() }),
]);
const packetPayload = z.object({ packetId: z.uuid() });
const homePayload = z.object({ userId: z.string().regex(/^[UW][A-Z0-9]{1,20}$/) });
const policyInvalidPayload = z.object({ contentHash: z.string().regex(/^[0-9a-f]{64}$/), file: z.string(), problems: z.array(z.string()), runningHash: z.string(), at: z.string() });
const approvalCardsPayload = z.object({ requestId: z.uuid(), remind: z.boolean().optional(), escalated: z.boolean().optional() });

export interface NotifyDeps {
  slack?: { notifier: SlackNotifier; directory: SlackDirectory; client: WebClient };
  teams?: { notifier: TeamsNotifier };
}

/**
 * Chat notices. Thin: parse the payload, call the platform notifier. A 429 moves the job back to
 * the delayed set for Retry-After seconds without spending an attempt, so one rate-limited channel
 * never holds a worker slot that other channels need.
 */
export async function notify(job: Job, token: string | undefined, deps: NotifyDeps): Promise<string> {
  try {
    // Jobs that every platform handles: each platform's posts are remembered by key, so a retry
    // after one platform failed does not post again on the other.
    const fanOut = async <T>(schema: z.ZodType<T>, what: string, slack: (p: T) => Promise<string>, teams: (p: T) => Promise<string>) => {
      const p = schema.safeParse(job.data);
      if (!p.success) throw new UnrecoverableError(`malformed ${what} payload`);
      const outcomes = [];
      if (deps.slack) outcomes.push(`slack ${await slack(p.data)}`);
      if (deps.teams) outcomes.push(`teams ${await teams(p.data)}`);
      return outcomes.join(', ') || 'no_platform';
    };
    const slackN = deps.slack?.notifier;
    const teamsN = deps.teams?.notifier;
    switch (job.name) {
      case INCIDENT_UPDATE_JOB:
        return await fanOut(incidentUpdatePayload, 'incident-update', (p) => slackN!.incidentUpdate(p), (p) => teamsN!.incidentUpdate(p));
      case APPROVAL_CARDS_JOB:
        return await fanOut(approvalCardsPayload, 'approval-cards', (p) => slackN!.approvalCards(p.requestId, { remind: p.remind }), (p) => teamsN!.approvalCards(p.requestId));
      case CONFIRMATION_REQUEST_JOB:
        return await fanOut(confirmationPayload, 'confirmation-request', (p) => slackN!.confirmationRequest(p.confirmationId), (p) => teamsN!.confirmationRequest(p.confirmationId));
      case PACKET_DELIVERY_JOB:
        return await fanOut(packetPayload, 'packet-delivery', (p) => slackN!.packetDelivery(p.packetId), (p) => teamsN!.packetDelivery(p.packetId));
      case POLICY_INVALID_NOTICE_JOB:
        return await fanOut(policyInvalidPayload, 'policy-invalid', (p) => slackN!.policyInvalidNotice(p), (p) => teamsN!.policyInvalidNotice(p));
      case BREAK_GLASS_NOTICE_JOB:
        return await fanOut(breakGlassPayload, 'break-glass', (p) => slackN!.breakGlassNotice(p), (p) => teamsN!.breakGlassNotice(p));
      case DECOMMISSION_NOTICE_JOB:
        return await fanOut(decommissionPayload, 'agent-decommissioned', (p) => slackN!.decommissionNotice(p), (p) => teamsN!.decommissionNotice(p));
      case TRUST_NOTICE_JOB:
        return await fanOut(trustNoticePayload, 'trust-notice', (p) => slackN!.trustNotice(p as TrustNotice), (p) => teamsN!.trustNotice(p as TrustNotice));
    }
    if (!deps.slack) return 'no_platform';
    const { notifier, directory, client } = deps.slack;
    switch (job.name) {
      case SLACK_HOME_JOB: {
        const p = homePayload.safeParse(job.data);
        if (!p.success) throw new UnrecoverableError('malformed slack-home payload');
        await notifier.publishHome(p.data.userId);
        return 'published';
      }
      case SLACK_DIRECTORY_JOB: {
        const r = await directory.refresh(client);
        return `resolved ${r.resolved}, unresolved ${r.unresolved}`;
      }
      default:
        throw new UnrecoverableError(`unknown notify job ${job.name}`);
    }
  } catch (err) {
    if ((err instanceof SlackRateLimited || err instanceof TeamsThrottled) && token) {
      await job.moveToDelayed(Date.now() + err.retryAfterSeconds * 1000, token);
      throw new DelayedError();
    }
    throw err;
  }
}
