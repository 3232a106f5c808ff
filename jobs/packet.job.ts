import type { Job } from 'bullmq';
import { BUILD_PACKET_JOB, type PacketService } from '../src/packets/packets.service.js';
import { parseJob } from '../src/queue/job-contracts.js';

/** Builds a requested trust packet. Idempotent: a packet already built is left as it is. */
export async function buildPacket(job: Pick<Job, 'data'>, packets: Pick<PacketService, 'build'>): Promise<string> {
  const p = parseJob(BUILD_PACKET_JOB, job.data);
  return packets.build(p.packetId);
}
