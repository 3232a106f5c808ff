import { UnrecoverableError, type Job, type Queue } from 'bullmq';
import { sql } from 'kysely';
import type { Db } from '../src/db/database.js';
import type { Clock } from '../src/core/clock.js';
import { APPROVAL_CALLBACK_JOB, APPROVAL_TIMER_JOB, APPROVAL_TIMERS_CANCEL_JOB, approvalTimerJobId, type ApprovalService } from '../src/approvals/approvals.service.js';
import { APPROVAL_TIMER_KINDS, parseJob } from '../src/queue/job-contracts.js';
import { deliverSigned } from '../src/webhooks/signed-delivery.js';

/** Remind, escalate or expire a request. Early runs retry (clock skew between replicas); late ones are no-ops. */
export async function approvalTimer(job: Pick<Job, 'data'>, approvals: ApprovalService): Promise<string> {
  const p = parseJob(APPROVAL_TIMER_JOB, job.data);
  const outcome = await approvals.timer(p.requestId, p.kind);
  if (outcome === 'not_due') throw new Error(`approval ${p.requestId} is not due to expire yet`);
  return outcome;
}

/**
 * Tells the agent the outcome at its callbackUrl: the signed delivery of every outbound webhook
 * (the job id as delivery id, SSRF-checked at every try, a receipt making reruns no-ops), retried
 * with the events queue's bounded backoff.
 */
export async function deliverApprovalCallback(
  job: Pick<Job, 'data' | 'id' | 'attemptsMade'>,
  deps: { db: Db; clock: Clock; approvals: ApprovalService; secret: string | undefined; callbackHosts?: readonly string[] },
): Promise<string> {
  const p = parseJob(APPROVAL_CALLBACK_JOB, job.data);
  if (!deps.secret) throw new UnrecoverableError('ARMALO_EVENTS_WEBHOOK_SECRET is not set: callbacks cannot be signed');
  const view = await deps.approvals.get(p.requestId);
  const row = await deps.db.selectFrom('approval_requests').select('callback_url').where('id', '=', p.requestId).executeTakeFirst();
  if (!view || !row?.callback_url) return 'gone';
  const deliveryId = String(job.id);
  const type = `approval.${view.status}`;
  return deliverSigned(
    { db: deps.db, clock: deps.clock },
    {
      id: deliveryId,
      type,
      target: row.callback_url,
      allowedHosts: deps.callbackHosts ?? deps.approvals.callbackHosts,
      secret: deps.secret,
      body: JSON.stringify({ id: deliveryId, type, createdAt: deps.clock.now().toISOString(), data: { agentId: view.agentId, request: view } }),
      attempt: job.attemptsMade + 1,
      label: 'approval callback',
    },
  );
}

/**
 * A request ended: its reminder, escalation and expiry jobs are removed from the delayed set. (They
 * would be no-ops anyway, since a timer checks the request is still pending, but a finished request
 * should leave nothing scheduled.) The timer jobs' ids are their outbox row ids.
 */
export async function cancelApprovalTimers(job: Pick<Job, 'data'>, deps: { db: Db; timers: Pick<Queue, 'getJob'> }): Promise<number> {
  const p = parseJob(APPROVAL_TIMERS_CANCEL_JOB, job.data);
  const rows = await deps.db
    .selectFrom('outbox')
    .select('id')
    .where('job_name', '=', APPROVAL_TIMER_JOB)
    .where(sql<boolean>`payload->>'requestId' = ${p.requestId}`)
    .execute();
  // The outbox rows are trimmed after a week; the deterministic ids find the timers of older requests.
  const ids = new Set([...rows.map((r) => r.id), ...APPROVAL_TIMER_KINDS.map((kind) => approvalTimerJobId(p.requestId, kind))]);
  let removed = 0;
  for (const id of ids) {
    const timer = await deps.timers.getJob(id);
    if (timer && (await timer.isDelayed())) {
      await timer.remove();
      removed++;
    }
  }
  return removed;
}
