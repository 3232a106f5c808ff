import { UnrecoverableError, type Job } from 'bullmq';
import type { Db } from '../src/db/database.js';
import type { Clock } from '../src/core/clock.js';
import { EVENT_TYPES, type EventType } from '../src/domain/events.js';
import { parseJob } from '../src/queue/job-contracts.js';
import { deliverSigned, type SignedOutcome } from '../src/webhooks/signed-delivery.js';

export interface DeliverEventDeps {
  db: Db;
  clock: Clock;
  webhook: { url: string; secret: string } | undefined;
  timeoutMs?: number;
}

export type DeliveryOutcome = SignedOutcome | 'no_webhook';

/**
 * Sends one domain event to the outbound webhook (signed delivery: receipt, retry classes). The
 * event id is the delivery id (`X-Armalo-Delivery`): receivers dedupe on it. The operator named the
 * webhook, so its host is allowed whatever address it has.
 */
export async function deliverEvent(job: Pick<Job, 'name' | 'data' | 'attemptsMade'>, deps: DeliverEventDeps): Promise<DeliveryOutcome> {
  if (!(EVENT_TYPES as readonly string[]).includes(job.name)) throw new UnrecoverableError(`unknown events job ${job.name}`);
  const event = parseJob(job.name as EventType, job.data);
  if (!deps.webhook) return 'no_webhook';
  return deliverSigned(
    { db: deps.db, clock: deps.clock, timeoutMs: deps.timeoutMs },
    {
      id: event.id,
      type: event.type,
      target: deps.webhook.url,
      allowedHosts: [new URL(deps.webhook.url).host],
      secret: deps.webhook.secret,
      body: JSON.stringify(event),
      attempt: job.attemptsMade + 1,
      label: `webhook delivery of event ${event.id}`,
    },
  );
}
