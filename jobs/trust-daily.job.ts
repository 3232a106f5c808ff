import type { Job } from 'bullmq';
import { parseJob } from '../src/queue/job-contracts.js';
import { TRUST_DAILY_JOB, type TrustService } from '../src/trust/trust.service.js';

/** The daily trust pass (a job scheduler): decay, and evidence that became stale. */
export async function trustDaily(job: Pick<Job, 'data'>, trust: Pick<TrustService, 'dailyPass'>): Promise<{ rescored: number; stale: number }> {
  parseJob(TRUST_DAILY_JOB, job.data);
  return trust.dailyPass();
}
