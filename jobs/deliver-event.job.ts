import { UnrecoverableError, type Job } from 'bullmq';
import { z } from 'zod';
import type { Db } from '../src/db/database.js';
import type { Clock } from '../src/core/clock.js';
import { EVENT_TYPES } from '../src/domain/events.js';
import { signPayload } from '../src/webhooks/signature.js';

export const eventEnvelopeSchema = z.object({
  id: z.uuid(),
  type: z.enum(EVENT_TYPES),
  createdAt: z.iso.datetime({ offset: true }),
  data: z.looseObject({ agentId: z.string() }),
});

export interface DeliverEventDeps {
  db: Db;
  clock: Clock;
  webhook: { url: string; secret: string } | undefined;
  timeoutMs?: number;
}

export type DeliveryOutcome = 'delivered' | 'already_delivered' | 'no_webhook';

/**
 * Sends one event to the outbound webhook, signed like inbound Armalo webhooks. The event id is
 * the delivery id (`X-Armalo-Delivery`): receivers dedupe on it. A receipt in Postgres makes a
 * job that runs again after a crash a no-op; 5xx, 408, 429 and network errors are retried with
 * the queue's bounded exponential backoff, other 4xx are final.
 */
export async function deliverEvent(job: Pick<Job, 'data' | 'attemptsMade'>, deps: DeliverEventDeps): Promise<DeliveryOutcome> {
  const parsed = eventEnvelopeSchema.safeParse(job.data);
  if (!parsed.success) throw new UnrecoverableError(`malformed event payload: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const event = parsed.data;
  if (!deps.webhook) return 'no_webhook';
  const target = deps.webhook.url;
  const done = await deps.db
    .selectFrom('event_deliveries')
    .select('event_id')
    .where('event_id', '=', event.id)
    .where('target', '=', target)
    .executeTakeFirst();
  if (done) return 'already_delivered';

  const body = JSON.stringify(event);
  const t = Math.floor(deps.clock.now().getTime() / 1000);
  let res: Response;
  try {
    res = await fetch(target, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'armalo-chatops-webhooks/1',
        'x-armalo-signature': signPayload(deps.webhook.secret, body, t),
        'x-armalo-delivery': event.id,
        'x-armalo-event': event.type,
      },
      body,
      signal: AbortSignal.timeout(deps.timeoutMs ?? 10_000),
      // A redirect is a misconfigured target, not a transient failure: never follow it (the
      // signature is for this URL) and do not retry it.
      redirect: 'manual',
    });
    // Drain the body so the connection can be reused.
    await res.arrayBuffer().catch(() => undefined);
  } catch (err) {
    throw new Error(`webhook delivery of ${event.id} failed: ${(err as Error).message}`);
  }
  if (res.status >= 200 && res.status < 300) {
    await deps.db
      .insertInto('event_deliveries')
      .values({ event_id: event.id, target, status_code: res.status, attempts: job.attemptsMade + 1, delivered_at: deps.clock.now() })
      .onConflict((oc) => oc.columns(['event_id', 'target']).doNothing())
      .execute();
    return 'delivered';
  }
  if (res.status >= 300 && res.status < 400) {
    throw new UnrecoverableError(`webhook answered a redirect (${res.status}) for event ${event.id}; fix ARMALO_EVENTS_WEBHOOK_URL (not retried)`);
  }
  const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
  const message = `webhook answered ${res.status} for event ${event.id}`;
  throw retryable ? new Error(message) : new UnrecoverableError(`${message} (not retried)`);
}
