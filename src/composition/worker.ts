import type { Worker } from 'bullmq';
import type { AppOptions } from '../app.js';
import { startWorkers } from '../../jobs/worker.js';
import { ConsequenceService } from '../trust/consequences.service.js';
import { createChatNotices } from './chat-notices.js';
import { withTimeout, type Lifecycle } from './lifecycle.js';
import type { Services } from './services.js';

/** The worker role: the outbox relay and one BullMQ worker per queue. */
export async function startWorkerRole(s: Services, options: AppOptions, lifecycle: Lifecycle): Promise<Worker[]> {
  const { config, db, clock, logger, relay } = s;
  if (relay) {
    await relay.start();
    lifecycle.onStop(() => relay.stop());
  }
  const workers = await startWorkers({
    notify: createChatNotices(config, s),
    connection: s.redis,
    prefix: config.queuePrefix,
    db,
    clock,
    logger,
    metrics: s.metrics,
    agents: s.agents,
    fleet: s.fleet,
    approvals: s.approvals,
    consequences: new ConsequenceService({ db, clock, policy: s.policy, agents: s.agents, logger }),
    packets: s.packets,
    trust: s.trust,
    queues: s.queues,
    inbound: s.inbound,
    webhook: config.eventsWebhook,
    lockDurationMs: options.worker?.lockDurationMs,
    stalledIntervalMs: options.worker?.stalledIntervalMs,
    scheduleWatchMs: options.worker?.scheduleWatchMs,
  });
  // Let running jobs finish for a few seconds; after that, stop anyway: an unfinished job is
  // taken over by another worker once its lock expires (jobs are idempotent).
  lifecycle.onStop(() => Promise.all(workers.map((w) => withTimeout(w.close(), 4000).catch(() => w.close(true)))));
  if (!config.eventsWebhook) logger.info('ARMALO_EVENTS_WEBHOOK_URL is not set: events are recorded but not sent anywhere');
  return workers;
}
