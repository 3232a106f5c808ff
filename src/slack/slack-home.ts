import type { JobsOptions, Queue } from 'bullmq';
import { addJob, type QueueName } from '../queue/job-contracts.js';
import { SLACK_HOME_JOB } from './slack-directory.js';

/**
 * How long a change to someone's approvals waits before their App Home is republished: every change
 * in that window shares the one publish. A burst of 1,000 approval requests was 1,000 publishes per
 * approver, each reading every waiting request (work that grew with the square of the burst).
 */
export const HOME_REFRESH_DELAY_MS = 1000;

/**
 * The job options of one person's App Home publish: at most one waiting and one running per person
 * (BullMQ deduplication on the person, across replicas). A request while one waits is covered by
 * it, since the publish reads the state when it runs. A request while one runs is kept and queued
 * after it (`keepLastIfActive`), so a change the running publish may have missed is never lost.
 * `opened`: the person opened the tab, so a waiting publish is moved up to now (`reschedule`).
 */
export function slackHomeJobOptions(userId: string, why: 'changed' | 'opened'): JobsOptions {
  return why === 'opened'
    ? { deduplication: { id: `slack-home:${userId}`, keepLastIfActive: true, reschedule: true } }
    : { delay: HOME_REFRESH_DELAY_MS, deduplication: { id: `slack-home:${userId}`, keepLastIfActive: true } };
}

/** Asks for one person's App Home to be republished (coalesced per person; see `slackHomeJobOptions`). */
export async function requestSlackHome(queues: Record<QueueName, Pick<Queue, 'add'>>, userId: string, why: 'changed' | 'opened'): Promise<void> {
  await addJob(queues, SLACK_HOME_JOB, { userId }, slackHomeJobOptions(userId, why));
}
