import { UnrecoverableError } from 'bullmq';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import { checkCallbackTarget, type ResolveAll } from '../net/callback-guard.js';
import { postPinned } from '../net/pinned-post.js';
import { signPayload } from './signature.js';

/** One signed POST to a receiver: an outbound event or an approval callback. */
export interface SignedDelivery {
  /** The delivery id (`X-Armalo-Delivery`): receivers dedupe on it; with the target, the receipt's key. */
  id: string;
  /** `X-Armalo-Event`. */
  type: string;
  target: string;
  /**
   * Hosts the target may be on. Empty: public addresses only, checked at every delivery and
   * connected to as checked (the SSRF guard). The operator's own webhook names its host here.
   */
  allowedHosts: readonly string[];
  secret: string;
  body: string;
  /** Which try this is (1 for the first), kept on the receipt. */
  attempt: number;
  /** How errors name this delivery, e.g. `approval callback`. */
  label: string;
}

export interface SignedDeliveryDeps {
  db: Db;
  clock: Clock;
  timeoutMs?: number;
  resolve?: ResolveAll;
}

export type SignedOutcome = 'delivered' | 'already_delivered';

/**
 * Sends one delivery, signed like inbound Armalo webhooks. A receipt in `event_deliveries` makes a
 * job that runs again after a crash a no-op. Retry classes: 5xx, 408, 429, network errors and a
 * name that does not resolve are retried (the queue's bounded backoff); a refused target, a
 * redirect (never followed: its target was never checked) and other 4xx fail for good.
 */
export async function deliverSigned(deps: SignedDeliveryDeps, d: SignedDelivery): Promise<SignedOutcome> {
  const done = await deps.db.selectFrom('event_deliveries').select('event_id').where('event_id', '=', d.id).where('target', '=', d.target).executeTakeFirst();
  if (done) return 'already_delivered';
  // Checked again at every delivery (the allow-list or DNS may have changed since), and the
  // connection goes to the address that was checked.
  const checked = await checkCallbackTarget(d.target, d.allowedHosts, deps.resolve);
  if (!checked.ok) {
    if (checked.retryable) throw new Error(`${d.label}: ${checked.reason}`);
    throw new UnrecoverableError(`${d.label} refused: ${checked.reason}`);
  }
  const res = await postPinned(checked.url, checked.address, {
    headers: {
      'content-type': 'application/json',
      'user-agent': 'armalo-chatops-webhooks/1',
      'x-armalo-signature': signPayload(d.secret, d.body, Math.floor(deps.clock.now().getTime() / 1000)),
      'x-armalo-delivery': d.id,
      'x-armalo-event': d.type,
    },
    body: d.body,
    timeoutMs: deps.timeoutMs ?? 10_000,
  }).catch((err: Error) => {
    throw new Error(`${d.label} failed: ${err.message}`);
  });
  if (res.status >= 200 && res.status < 300) {
    await deps.db
      .insertInto('event_deliveries')
      .values({ event_id: d.id, target: d.target, status_code: res.status, attempts: d.attempt, delivered_at: deps.clock.now() })
      .onConflict((oc) => oc.columns(['event_id', 'target']).doNothing())
      .execute();
    return 'delivered';
  }
  if (res.status >= 300 && res.status < 400) throw new UnrecoverableError(`${d.label} answered ${res.status} (a redirect; redirects are not followed: fix the URL)`);
  const message = `${d.label} answered ${res.status}`;
  if (res.status >= 500 || res.status === 408 || res.status === 429) throw new Error(message);
  throw new UnrecoverableError(`${message} (not retried)`);
}
