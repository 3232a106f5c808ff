import type { Job } from 'bullmq';
import { LIFT_ACTION_JOB, type AgentService } from '../src/agents/agents.service.js';
import { parseJob } from '../src/queue/job-contracts.js';

/** Lifts a narrow or contain whose ttl ran out. Safe to run twice: the second run finds nothing in force. */
export async function liftAction(job: Pick<Job, 'data'>, agents: AgentService): Promise<string> {
  const p = parseJob(LIFT_ACTION_JOB, job.data);
  const outcome = await agents.liftExpired(p.actionId, p.agentId);
  if (outcome === 'not_due') {
    // Clocks between replicas can differ slightly: try again shortly rather than lose the lift.
    throw new Error(`action ${p.actionId} is not due yet`);
  }
  return outcome;
}
