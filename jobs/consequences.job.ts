import type { Job } from 'bullmq';
import { parseJob } from '../src/queue/job-contracts.js';
import { CONSEQUENCES_JOB, type ConsequenceService } from '../src/trust/consequences.service.js';

/** Evaluates the policy's consequence rules for one trust trigger. Safe to run twice. */
export async function applyConsequences(job: Pick<Job, 'data'>, consequences: ConsequenceService): Promise<string[]> {
  const p = parseJob(CONSEQUENCES_JOB, job.data);
  return consequences.apply(p.agentId, p.trigger);
}
