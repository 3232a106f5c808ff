import { UnrecoverableError, type Job } from 'bullmq';
import { z } from 'zod';
import type { ConsequenceService } from '../src/trust/consequences.service.js';

const tier = z.enum(['bronze', 'silver', 'gold', 'platinum']);
const payload = z.object({
  agentId: z.string().min(1),
  trigger: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('violation'), eventId: z.string(), pactId: z.string(), severity: z.enum(['low', 'medium', 'high', 'critical']) }),
    z.object({ kind: z.literal('score'), eventId: z.string(), score: z.number(), tier, previousScore: z.number().nullable(), previousTier: tier.nullable() }),
    z.object({ kind: z.literal('evidence'), eventId: z.string(), ageMs: z.number() }),
  ]),
});

/** Evaluates the policy's consequence rules for one trust trigger. Safe to run twice. */
export async function applyConsequences(job: Pick<Job, 'data'>, consequences: ConsequenceService): Promise<string[]> {
  const p = payload.safeParse(job.data);
  if (!p.success) throw new UnrecoverableError('malformed consequences payload');
  return consequences.apply(p.data.agentId, p.data.trigger);
}
