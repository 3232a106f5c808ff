import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import type { AgentService } from '../agents/agents.service.js';
import { firedConsequences, type TrustTrigger } from '../domain/consequences.js';
import { isCodedError } from '../domain/errors.js';
import type { TrustTier } from '../domain/trust-score.js';
import type { Logger } from '../observability/logger.js';
import type { Policy } from '../policy/policy.schema.js';
import type { JobName } from '../queue/job-contracts.js';

export const CONSEQUENCES_JOB = 'consequences' satisfies JobName;

/**
 * Trust deterioration acting on its own: the policy's consequence rules narrow or contain an agent
 * through exactly the use case a responder uses, as actor `policy:<rule id>`. Each (rule, trigger)
 * fires once: its idempotency key makes a repeated job or event a no-op.
 */
export class ConsequenceService {
  constructor(private readonly deps: { db: Db; clock: Clock; policy: Policy; agents: AgentService; logger: Logger }) {}

  async apply(agentId: string, trigger: TrustTrigger): Promise<string[]> {
    const { db, clock, policy, agents, logger } = this.deps;
    if (policy.consequences.length === 0) return [];
    const latest = await db.selectFrom('trust_scores').select('tier').where('agent_id', '=', agentId).orderBy('computed_at', 'desc').orderBy('id', 'desc').executeTakeFirst();
    const newest = await db.selectFrom('evaluations').select((eb) => eb.fn.max('observed_at').as('at')).where('agent_id', '=', agentId).executeTakeFirst();
    const newestAt = newest?.at ? new Date(newest.at as unknown as string) : null;
    const fired = firedConsequences(policy.consequences, trigger, {
      tier: (latest?.tier as TrustTier | undefined) ?? null,
      evidenceAgeMs: newestAt ? clock.now().getTime() - newestAt.getTime() : null,
    });
    const applied: string[] = [];
    for (const f of fired) {
      try {
        const r = await agents.act(
          agentId,
          {
            kind: f.action.kind,
            scopes: f.action.kind === 'narrow' ? f.action.scopes : undefined,
            reason: `${f.why}. Restore with /armalo restore ${agentId} <reason> once resolved.`,
            actor: `policy:${f.ruleId}`,
          },
          { idempotencyKey: f.key },
        );
        if (!r.replayed) applied.push(f.ruleId);
      } catch (err) {
        // Already contained, or the narrow matches none of its grants: nothing more to do.
        if (!isCodedError(err)) throw err;
        logger.info({ agentId, rule: f.ruleId, reason: err.message }, 'consequence did not change anything');
      }
    }
    return applied;
  }
}
