import type { Job } from 'bullmq';
import { LIFT_ACTION_JOB, type AgentService } from '../src/agents/agents.service.js';
import type { Clock } from '../src/core/clock.js';
import type { Db } from '../src/db/database.js';
import { closeFleetIncidentIfLifted, fleetIncidentOfAction } from '../src/fleet/fleet.repository.js';
import { parseJob } from '../src/queue/job-contracts.js';

/**
 * Lifts a narrow or contain whose ttl ran out. Safe to run twice: the second run finds nothing in force.
 * An action that was part of a fleet action may have been the last of its fleet incident in force:
 * the incident then closes (by `system:ttl`, as a single incident does), here rather than in a
 * notice job, so it closes in a deployment without chat too. A retry after a lift that committed
 * (`not_in_force`) checks again, so a crash between the two does not leave it open.
 */
export async function liftAction(job: Pick<Job, 'data'>, agents: AgentService, fleet?: { db: Db; clock: Clock }): Promise<string> {
  const p = parseJob(LIFT_ACTION_JOB, job.data);
  const outcome = await agents.liftExpired(p.actionId, p.agentId);
  if (outcome === 'not_due') {
    // Clocks between replicas can differ slightly: try again shortly rather than lose the lift.
    throw new Error(`action ${p.actionId} is not due yet`);
  }
  if (fleet && (outcome === 'lifted' || outcome === 'not_in_force')) {
    const fleetIncidentId = await fleetIncidentOfAction(fleet.db, p.actionId);
    if (fleetIncidentId) await closeFleetIncidentIfLifted(fleet.db, fleetIncidentId, 'system:ttl', fleet.clock.now());
  }
  return outcome;
}
