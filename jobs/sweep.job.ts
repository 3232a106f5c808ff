import { sql } from 'kysely';
import type { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Db } from '../src/db/database.js';
import type { Clock } from '../src/core/clock.js';
import type { AgentService } from '../src/agents/agents.service.js';
import { expiredActionIds } from '../src/agents/agents.repository.js';
import { APPROVAL_TIMER_JOB, type ApprovalService } from '../src/approvals/approvals.service.js';
import type { InboundEvents } from '../src/webhooks/inbound-events.js';
import { parseJob, type JobName } from '../src/queue/job-contracts.js';
import { FLEET_RECORDS_BACKSTOP_MS, type FleetService } from '../src/fleet/fleet.service.js';
import { unrecordedHolds } from '../src/fleet/fleet.repository.js';

export const SWEEP_JOB = 'sweep' satisfies JobName;
export const SWEEP_EVERY_MS = 30_000;

export interface SweepDeps {
  db: Db;
  clock: Clock;
  agents: AgentService;
  approvals?: ApprovalService;
  queues?: { timers: Pick<Queue, 'addBulk'> };
  inbound?: Pick<InboundEvents, 'applyHeldForRegistered'>;
  /** Records held containments whose records are overdue (their `fleet-records` job was lost). */
  fleet?: Pick<FleetService, 'recordHold'>;
  /** Queues whose jobs failed by stalling are put back (`reviveStalled`), and their Redis. */
  revive?: { queues: Queue[]; redis: StallRedis };
}

/** BullMQ's reason for a job it failed because its workers kept dying while running it. */
export const STALL_FAILURE = 'job stalled more than allowable limit';
/** How often one job is put back after failing by stalling (each time after MAX_STALLED_COUNT more stalls). */
export const MAX_REVIVALS = 5;
/** Only jobs that failed this recently are put back (as long as a notice may keep being deferred). */
export const REVIVE_WITHIN_MS = 24 * 3600_000;
/** A field of our own in the job's hash: how often the sweep put it back. */
const REVIVED_FIELD = 'armaloRevived';
type StallRedis = Pick<Redis, 'hget' | 'hincrby' | 'hset'>;

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
 * could not: nothing held may wait for a resend that never comes), writes the records of a held
 * fleet containment whose `fleet-records` job is overdue, and trims outbox rows that were published
 * more than a week ago.
 */
export async function sweep(deps: SweepDeps): Promise<{ lifted: number; expired: number; timers: number; held: number; recorded: number; trimmed: number; revived: number }> {
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
  // Held containments whose records are overdue (their job lost with Redis's data): idempotent, as the job is.
  let recorded = 0;
  if (deps.fleet) {
    const openedBefore = new Date(deps.clock.now().getTime() - 2 * FLEET_RECORDS_BACKSTOP_MS);
    for (const id of await unrecordedHolds(deps.db, { openedBefore })) if (await deps.fleet.recordHold(id)) recorded++;
  }
  const trimmed = await deps.db
    .deleteFrom('outbox')
    .where('published_at', '<', sql<Date>`now() - interval '7 days'`)
    .executeTakeFirst();
  // Leases and "sending" markers long past their expiry (a marker outlives its lookup window by far).
  await deps.db.deleteFrom('chat_leases').where('expires_at', '<', sql<Date>`now() - interval '1 day'`).execute();
  let revived = 0;
  for (const queue of deps.revive?.queues ?? []) revived += await reviveStalled(queue, deps.revive!.redis, deps.clock);
  return { lifted, expired, timers, held, recorded, trimmed: Number(trimmed.numDeletedRows), revived };
}

/**
 * Puts back (same job id, same payload, so the same ledger keys and delivery ids: nothing is
 * posted or delivered twice) the jobs BullMQ failed for stalling: their workers died while
 * running them more than MAX_STALLED_COUNT times, which under a crash-looping deploy is the
 * deploy's fault, not the job's, and must not lose a notice, an event or a callback. Each job comes
 * back at most MAX_REVIVALS times (its stall count starting again from zero), so a job that itself
 * kills its worker still ends failed for good after (MAX_REVIVALS + 1) × MAX_STALLED_COUNT deaths,
 * logged where it failed. Answers how many were put back.
 */
export async function reviveStalled(queue: Queue, client: StallRedis, clock: Clock): Promise<number> {
  const since = clock.now().getTime() - REVIVE_WITHIN_MS;
  let revived = 0;
  for (let start = 0; ; start += 200) {
    const page = await queue.getFailed(start, start + 199);
    for (const job of page) {
      if (job.failedReason !== STALL_FAILURE || !job.id || (job.finishedOn ?? 0) < since) continue;
      const key = queue.toKey(job.id);
      if (Number((await client.hget(key, REVIVED_FIELD)) ?? 0) >= MAX_REVIVALS) continue;
      await client.hincrby(key, REVIVED_FIELD, 1);
      await client.hset(key, 'stc', 0);
      // Throws when the job is no longer failed (put back by someone else meanwhile): nothing to do.
      if (await job.retry('failed').then(() => true, () => false)) revived++;
    }
    // Newest first: stop at the first page that reaches past the window.
    if (page.length < 200 || page.some((j) => (j.finishedOn ?? 0) < since)) break;
  }
  return revived;
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
