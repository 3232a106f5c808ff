import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { WebClient } from '@slack/web-api';
import { isJobName, parseJob } from '../src/queue/job-contracts.js';
import type { NoticeService } from '../src/notices/notifier.js';
import { RetryLater } from '../src/notices/platform.js';
import type { LeaseOwner } from '../src/notices/ledger.js';
import type { Redis } from 'ioredis';
import type { SlackDirectory } from '../src/slack/slack-directory.js';

/**
 * How long a notice may keep being deferred (rate limits, a platform answering 5xx, another worker
 * holding its key) before the job fails for good and is logged: deferrals spend no attempt, so
 * this is what bounds them.
 */
export const MAX_DEFERRAL_MS = 24 * 3600_000;

export interface NotifyDeps {
  /** The notices, over every configured chat platform. */
  notices?: NoticeService;
  /** Slack's directory (policy emails to Slack users). */
  slack?: { directory: SlackDirectory; client: WebClient };
  /** The queues' Redis: leases taken by a job are tied to its BullMQ lock (read back here). */
  redis?: Pick<Redis, 'get'>;
}

/**
 * Chat notices. Thin: parse the payload with its contract, call one NoticeService use case. A
 * RetryLater (429 with Retry-After, 5xx, Teams 412, a key another worker is delivering) moves the
 * job back to the delayed set for that long without spending an attempt, so one rate-limited
 * channel never holds a worker slot that other channels need.
 */
export async function notify(job: Job, token: string | undefined, deps: NotifyDeps): Promise<string> {
  try {
    const redis = deps.redis;
    // Leases this job takes name its lock, so a worker waiting for the same key can tell at once that
    // this one died (its lock gone) rather than waiting out the lease. Passed down explicitly (not
    // through an AsyncLocalStorage, which would turn async hooks on for the whole process).
    const owner: LeaseOwner | undefined =
      redis && token && job.id ? { lockKey: `${job.queueQualifiedName}:${job.id}:lock`, token, holds: async (lockKey: string, t: string) => (await redis.get(lockKey)) === t } : undefined;
    return await run(job, deps, owner);
  } catch (err) {
    if (err instanceof RetryLater && token) {
      if (Date.now() - job.timestamp > MAX_DEFERRAL_MS) throw new UnrecoverableError(`still deferred after ${MAX_DEFERRAL_MS / 3600_000} h: ${err.message}`);
      await job.moveToDelayed(Date.now() + err.delayMs, token);
      throw new DelayedError();
    }
    throw err;
  }
}

async function run(job: Job, deps: NotifyDeps, owner: LeaseOwner | undefined): Promise<string> {
  const name = job.name;
  if (!isJobName(name)) throw new UnrecoverableError(`unknown notify job ${name}`);
  if (name === 'slack-directory') {
    parseJob(name, job.data);
    if (!deps.slack) return 'no_platform';
    const r = await deps.slack.directory.refresh(deps.slack.client);
    return `resolved ${r.resolved}, unresolved ${r.unresolved}`;
  }
  const notices = deps.notices;
  switch (name) {
    case 'incident-update': {
      const p = parseJob(name, job.data);
      return notices ? notices.incidentUpdate(p, owner) : 'no_platform';
    }
    case 'fleet-update': {
      const p = parseJob(name, job.data);
      return notices ? notices.fleetUpdate(p, owner) : 'no_platform';
    }
    case 'approval-cards': {
      const p = parseJob(name, job.data);
      return notices ? notices.approvalCards(p, owner) : 'no_platform';
    }
    case 'confirmation-request': {
      const p = parseJob(name, job.data);
      return notices ? notices.confirmationRequest(p.confirmationId, owner) : 'no_platform';
    }
    case 'packet-delivery': {
      const p = parseJob(name, job.data);
      return notices ? notices.packetDelivery(p.packetId, owner) : 'no_platform';
    }
    case 'policy-invalid': {
      const p = parseJob(name, job.data);
      return notices ? notices.policyInvalidNotice(p) : 'no_platform';
    }
    case 'break-glass': {
      const p = parseJob(name, job.data);
      return notices ? notices.breakGlassNotice(p) : 'no_platform';
    }
    case 'agent-decommissioned': {
      const p = parseJob(name, job.data);
      return notices ? notices.decommissionNotice(p) : 'no_platform';
    }
    case 'trust-notice': {
      const p = parseJob(name, job.data);
      return notices ? notices.trustNotice(p) : 'no_platform';
    }
    case 'audit-broken-notice': {
      const p = parseJob(name, job.data);
      return notices ? notices.auditBrokenNotice(p) : 'no_platform';
    }
    case 'slack-home': {
      const p = parseJob(name, job.data);
      return notices ? notices.publishHome('slack', p.userId) : 'no_platform';
    }
    default:
      throw new UnrecoverableError(`unknown notify job ${name}`);
  }
}
