import { sql } from 'kysely';
import type { Db } from '../src/db/database.js';
import type { Clock } from '../src/core/clock.js';
import type { AgentService } from '../src/agents/agents.service.js';
import { expiredActionIds } from '../src/agents/agents.repository.js';
import type { ApprovalService } from '../src/approvals/approvals.service.js';

export const SWEEP_JOB = 'sweep';
export const SWEEP_EVERY_MS = 30_000;

/**
 * The safety net under timed work: lifts any action whose ttl ran out but is still in force (a
 * delayed job lost with a Redis that keeps nothing on disk), expires overdue approval requests for
 * the same reason, and trims outbox rows that were
 * published more than a week ago.
 */
export async function sweep(deps: { db: Db; clock: Clock; agents: AgentService; approvals?: ApprovalService }): Promise<{ lifted: number; expired: number; trimmed: number }> {
  let lifted = 0;
  for (const row of await expiredActionIds(deps.db, deps.clock.now())) {
    if ((await deps.agents.liftExpired(row.id, row.agent_id)) === 'lifted') lifted++;
  }
  // Approval requests past their expiry whose timer job was lost: expire them now.
  let expired = 0;
  if (deps.approvals) {
    const overdue = await deps.db.selectFrom('approval_requests').select('id').where('status', '=', 'pending').where('expires_at', '<=', deps.clock.now()).limit(100).execute();
    for (const { id } of overdue) if ((await deps.approvals.timer(id, 'expire')) === 'expired') expired++;
  }
  const trimmed = await deps.db
    .deleteFrom('outbox')
    .where('published_at', '<', sql<Date>`now() - interval '7 days'`)
    .executeTakeFirst();
  return { lifted, expired, trimmed: Number(trimmed.numDeletedRows) };
}
