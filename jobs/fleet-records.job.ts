import type { Job } from 'bullmq';
import { FLEET_RECORDS_JOB, type FleetService } from '../src/fleet/fleet.service.js';
import { parseJob } from '../src/queue/job-contracts.js';

/**
 * The backstop of a containment by selector: writes the per-agent records of a held containment
 * and releases its hold, when the process that held it did not (it died, or Postgres failed it).
 * Safe to run twice, and alongside that process: the hold's row lock and its release decide.
 */
export async function recordFleetHold(job: Pick<Job, 'data'>, fleet: Pick<FleetService, 'recordHold'> | undefined): Promise<string> {
  const p = parseJob(FLEET_RECORDS_JOB, job.data);
  if (!fleet) throw new Error('this worker has no fleet service: it cannot record a held containment (another worker will retry)');
  return (await fleet.recordHold(p.fleetIncidentId)) ? 'recorded' : 'already recorded';
}
