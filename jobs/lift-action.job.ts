import { UnrecoverableError, type Job } from 'bullmq';
import { z } from 'zod';
import type { AgentService } from '../src/agents/agents.service.js';

export const liftActionPayload = z.object({ actionId: z.uuid(), agentId: z.string().min(1) });

/** Lifts a narrow or contain whose ttl ran out. Safe to run twice: the second run finds nothing in force. */
export async function liftAction(job: Pick<Job, 'data'>, agents: AgentService): Promise<string> {
  const parsed = liftActionPayload.safeParse(job.data);
  if (!parsed.success) throw new UnrecoverableError('malformed lift-action payload');
  const outcome = await agents.liftExpired(parsed.data.actionId, parsed.data.agentId);
  if (outcome === 'not_due') {
    // Clocks between replicas can differ slightly: try again shortly rather than lose the lift.
    throw new Error(`action ${parsed.data.actionId} is not due yet`);
  }
  return outcome;
}
