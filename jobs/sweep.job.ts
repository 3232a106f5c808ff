import { sql } from 'kysely';
import type { Job, Queue } from 'bullmq';
import type { Db } from '../src/db/database.js';
import type { Clock } from '../src/core/clock.js';
import type { AgentService } from '../src/agents/agents.service.js';
import { expiredActionIds } from '../src/agents/agents.repository.js';
import { APPROVAL_TIMER_JOB, type ApprovalService } from '../src/approvals/approvals.service.js';
import type { InboundEvents } from '../src/webhooks/inbound-events.js';
import { parseJob, type JobName } from '../src/queue/job-contracts.js';

export const SWEEP_JOB = 'sweep' satisfies JobName;
export const SWEEP_EVERY_MS = 30_000;

export interface SweepDeps {
  db: Db;
  clock: Clock;
  agents: AgentService;
  approvals?: ApprovalService;
  queues?: { timers: Pick<Queue, 'addBulk'> };
  inbound?: Pick<InboundEvents, 'applyHeldForRegistered'>;
}

/** The sweep job (a job scheduler): its payload is empty. */
export async function sweepJob(job: Pick<Job, 'data'>, deps: SweepDeps): ReturnType<typeof sweep> {
  parseJob(SWEEP_JOB, job.data);
  return sweep(deps);
}

/**
 * The safety net under timed work, for a Redis that lost its data (one that keeps nothing on disk,
 * a failover): lifts any action whose ttl ran out but is still in force, expires overdue approval
 * requests at once, re-adds the reminders, escalations and expiries of pending requests from
 * Postgres, applies held webhook events whose agent is registered by now (the registration hook
 * could not: nothing held may wait for a resend that never comes), and trims outbox rows that were
 * published more than a week ago.
 */
export async function sweep(deps: SweepDeps): Promise<{ lifted: number; expired: number; timers: number; held: number; trimmed: number }> {
  let lifted = 0;
  for (const row of await expiredActionIds(deps.db, deps.clock.now())) {
    if ((await deps.agents.liftExpired(row.id, row.agent_id)) === 'lifted') lifted++;
  }
  // Approval requests past their expiry whose timer job was lost: expire them now.
  let expired = 0;
  let timers = 0;
  if (deps.approvals) {
    const overdue = await deps.db.selectFrom('approval_requests').select('id').where('status', '=', 'pending').where('expires_at', '<=', deps.clock.now()).limit(100).execute();
    for (const { id } of overdue) if ((await deps.approvals.timer(id, 'expire')) === 'expired') expired++;
    if (deps.queues) timers = await rebuildApprovalTimers(deps.approvals, deps.queues.timers, deps.clock);
  }
  // Bounded (a batch per sweep) and idempotent: the same path and row lock as the registration hook.
  const held = deps.inbound ? await deps.inbound.applyHeldForRegistered() : 0;
  const trimmed = await deps.db
    .deleteFrom('outbox')
    .where('published_at', '<', sql<Date>`now() - interval '7 days'`)
    .executeTakeFirst();
  return { lifted, expired, timers, held, trimmed: Number(trimmed.numDeletedRows) };
}

/**
 * Re-adds every pending request's timers under their deterministic job ids. BullMQ ignores an add
 * whose id it already holds (delayed, done or failed), so this is a no-op while Redis is intact and
 * a rebuild after it lost its data. Answers how many timers were offered.
 */
export async function rebuildApprovalTimers(approvals: ApprovalService, timersQueue: Pick<Queue, 'addBulk'>, clock: Clock): Promise<number> {
  let offered = 0;
  let after: { createdAt: Date; id: string } | null = null;
  do {
    const page = await approvals.pendingTimers(after);
    const now = clock.now().getTime();
    if (page.timers.length) {
      await timersQueue.addBulk(
        page.timers.map((t) => ({ name: APPROVAL_TIMER_JOB, data: { requestId: t.requestId, kind: t.kind }, opts: { jobId: t.jobId, delay: Math.max(0, t.runAt.getTime() - now) } })),
      );
    }
    offered += page.timers.length;
    after = page.next;
  } while (after);
  return offered;
}
