import { UnrecoverableError, type Job, type Queue } from 'bullmq';
import { sql } from 'kysely';
import { z } from 'zod';
import type { Db } from '../src/db/database.js';
import type { Clock } from '../src/core/clock.js';
import { approvalTimerJobId, type ApprovalService } from '../src/approvals/approvals.service.js';
import { signPayload } from '../src/webhooks/signature.js';
import { checkCallbackTarget } from '../src/net/callback-guard.js';
import { postPinned } from '../src/net/pinned-post.js';

const timerPayload = z.object({ requestId: z.uuid(), kind: z.enum(['remind', 'escalate', 'expire']) });
const callbackPayload = z.object({ requestId: z.uuid() });

/** Remind, escalate or expire a request. Early runs retry (clock skew between replicas); late ones are no-ops. */
export async function approvalTimer(job: Pick<Job, 'data'>, approvals: ApprovalService): Promise<string> {
  const p = timerPayload.safeParse(job.data);
  if (!p.success) throw new UnrecoverableError('malformed approval-timer payload');
  const outcome = await approvals.timer(p.data.requestId, p.data.kind);
  if (outcome === 'not_due') throw new Error(`approval ${p.data.requestId} is not due to expire yet`);
  return outcome;
}

/**
 * Tells the agent the outcome at its callbackUrl: signed like every outbound webhook, the job id
 * as delivery id, retried with the events queue's bounded backoff; a receipt makes reruns no-ops.
 */
export async function deliverApprovalCallback(
  job: Pick<Job, 'data' | 'id' | 'attemptsMade'>,
  deps: { db: Db; clock: Clock; approvals: ApprovalService; secret: string | undefined; callbackHosts?: readonly string[] },
): Promise<string> {
  const p = callbackPayload.safeParse(job.data);
  if (!p.success) throw new UnrecoverableError('malformed approval-callback payload');
  if (!deps.secret) throw new UnrecoverableError('ARMALO_EVENTS_WEBHOOK_SECRET is not set: callbacks cannot be signed');
  const view = await deps.approvals.get(p.data.requestId);
  const row = await deps.db.selectFrom('approval_requests').select('callback_url').where('id', '=', p.data.requestId).executeTakeFirst();
  if (!view || !row?.callback_url) return 'gone';
  const deliveryId = String(job.id);
  const target = row.callback_url;
  const done = await deps.db.selectFrom('event_deliveries').select('event_id').where('event_id', '=', deliveryId).where('target', '=', target).executeTakeFirst();
  if (done) return 'already_delivered';
  // Checked again at every delivery (the allow-list or DNS may have changed since the request was
  // made), and the connection goes to the address that was checked.
  const checked = await checkCallbackTarget(target, deps.callbackHosts ?? deps.approvals.callbackHosts);
  if (!checked.ok) {
    if (checked.retryable) throw new Error(`approval callback: ${checked.reason}`);
    throw new UnrecoverableError(`approval callback refused: ${checked.reason}`);
  }
  const body = JSON.stringify({ id: deliveryId, type: `approval.${view.status}`, createdAt: deps.clock.now().toISOString(), data: { agentId: view.agentId, request: view } });
  const res = await postPinned(checked.url, checked.address, {
    headers: {
      'content-type': 'application/json',
      'x-armalo-signature': signPayload(deps.secret, body, Math.floor(deps.clock.now().getTime() / 1000)),
      'x-armalo-delivery': deliveryId,
      'x-armalo-event': `approval.${view.status}`,
    },
    body,
    timeoutMs: 10_000,
  }).catch((err: Error) => {
    throw new Error(`approval callback failed: ${err.message}`);
  });
  // A redirect is not followed: its target was never checked, and a receiver has no reason to move.
  if (res.status >= 300 && res.status < 400) throw new UnrecoverableError(`approval callback answered ${res.status} (a redirect; redirects are not followed)`);
  if (res.status >= 200 && res.status < 300) {
    await deps.db
      .insertInto('event_deliveries')
      .values({ event_id: deliveryId, target, status_code: res.status, attempts: job.attemptsMade + 1, delivered_at: deps.clock.now() })
      .onConflict((oc) => oc.columns(['event_id', 'target']).doNothing())
      .execute();
    return 'delivered';
  }
  if (res.status >= 500 || res.status === 408 || res.status === 429) throw new Error(`approval callback answered ${res.status}`);
  throw new UnrecoverableError(`approval callback answered ${res.status} (not retried)`);
}

/**
 * A request ended: its reminder, escalation and expiry jobs are removed from the delayed set. (They
 * would be no-ops anyway, since a timer checks the request is still pending, but a finished request
 * should leave nothing scheduled.) The timer jobs' ids are their outbox row ids.
 */
export async function cancelApprovalTimers(job: Pick<Job, 'data'>, deps: { db: Db; timers: Queue }): Promise<number> {
  const p = callbackPayload.safeParse(job.data);
  if (!p.success) throw new UnrecoverableError('malformed approval-timers-cancel payload');
  const rows = await deps.db
    .selectFrom('outbox')
    .select('id')
    .where('job_name', '=', 'approval-timer')
    .where(sql<boolean>`payload->>'requestId' = ${p.data.requestId}`)
    .execute();
  // The outbox rows are trimmed after a week; the deterministic ids find the timers of older requests.
  const ids = new Set([...rows.map((r) => r.id), ...(['remind', 'escalate', 'expire'] as const).map((kind) => approvalTimerJobId(p.data.requestId, kind))]);
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
