import { UnrecoverableError, Worker, type Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Db } from '../src/db/database.js';
import type { Clock } from '../src/core/clock.js';
import { createLimitedLog, type Logger } from '../src/observability/logger.js';
import { tracing } from '../src/observability/tracing.js';
import type { Metrics } from '../src/observability/metrics.js';
import type { AgentService } from '../src/agents/agents.service.js';
import type { ApprovalService } from '../src/approvals/approvals.service.js';
import type { ConsequenceService } from '../src/trust/consequences.service.js';
import { TRUST_DAILY_EVERY_MS, TRUST_DAILY_JOB, type TrustService } from '../src/trust/trust.service.js';
import type { PacketService } from '../src/packets/packets.service.js';
import { EVENT_TYPES } from '../src/domain/events.js';
import { QUEUES, type JobsOn, type QueueName } from '../src/queue/job-contracts.js';
import type { Queues } from '../src/queue/queues.js';
import type { InboundEvents } from '../src/webhooks/inbound-events.js';
import { SLACK_DIRECTORY_EVERY_MS, SLACK_DIRECTORY_JOB } from '../src/slack/slack-directory.js';
import { approvalTimer, cancelApprovalTimers, deliverApprovalCallback } from './approval.job.js';
import { applyConsequences } from './consequences.job.js';
import { deliverEvent } from './deliver-event.job.js';
import { liftAction } from './lift-action.job.js';
import { buildPacket } from './packet.job.js';
import { MAX_REVIVALS, STALL_FAILURE, sweepJob, SWEEP_EVERY_MS, SWEEP_JOB } from './sweep.job.js';
import { trustDaily } from './trust-daily.job.js';
import { parseJob } from '../src/queue/job-contracts.js';
import { AUDIT_VERIFY_FULL_EVERY_MS, AUDIT_VERIFY_FULL_JOB, runScheduledAuditVerify } from '../src/audit/scheduled-verify.js';
import { notify, type NotifyDeps } from './notify.job.js';
import { recordFleetHold } from './fleet-records.job.js';
import type { FleetService } from '../src/fleet/fleet.service.js';

export interface WorkerDeps {
  connection: Redis;
  prefix: string;
  db: Db;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  agents: AgentService;
  /** Records held containments (the `fleet-records` backstop); without it those jobs fail and are retried. */
  fleet?: Pick<FleetService, 'recordHold'>;
  approvals: ApprovalService;
  consequences: ConsequenceService;
  trust: TrustService;
  packets: PacketService;
  queues: Queues;
  webhook: { url: string; secret: string } | undefined;
  notify: NotifyDeps;
  /** Held webhook events, for the sweep to apply those whose agent is registered by now. */
  inbound?: InboundEvents;
  /** For tests: how long a job's lock lasts before another worker may take it over. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** For tests: how often the schedulers are checked and put back (default: the sweep's period). */
  scheduleWatchMs?: number;
}

/** Times a job may be taken over from a worker that died running it before it fails for good. */
export const MAX_STALLED_COUNT = 10;

/** The worker role: one BullMQ worker per queue, each a thin shell around a use case. */
export async function startWorkers(deps: WorkerDeps): Promise<Worker[]> {
  const common = {
    connection: deps.connection,
    prefix: deps.prefix,
    // A job whose worker died is taken over (every job is idempotent). BullMQ's default fails it
    // for good at its second stall, and stalls add up over the job's life: a notice job waiting out
    // a dead worker's lease (up to a minute) is active half the time, so two worker crashes in that
    // minute (a crash-looping deploy) lost the notice. Still bounded, against a job that kills its
    // worker; past the bound the sweep puts the job back (`reviveStalled`, up to MAX_REVIVALS times).
    maxStalledCount: MAX_STALLED_COUNT,
    ...(deps.lockDurationMs ? { lockDuration: deps.lockDurationMs } : {}),
    ...(deps.stalledIntervalMs ? { stalledInterval: deps.stalledIntervalMs } : {}),
    // With tracing on, each job runs in a span that continues the trace of whoever added it.
    ...(tracing ? { telemetry: tracing.bullmq } : {}),
  };
  const deliver = async (job: Job) => {
    const outcome = await deliverEvent(job, { db: deps.db, clock: deps.clock, webhook: deps.webhook });
    if (outcome === 'delivered') deps.metrics.eventDeliveries.inc({ outcome });
    return outcome;
  };
  const events = new Worker(
    QUEUES.events,
    dispatch(QUEUES.events, {
      ...(Object.fromEntries(EVENT_TYPES.map((type) => [type, deliver])) as Record<(typeof EVENT_TYPES)[number], typeof deliver>),
      'approval-callback': (job) => deliverApprovalCallback(job, { db: deps.db, clock: deps.clock, approvals: deps.approvals, secret: deps.webhook?.secret }),
    }),
    { ...common, concurrency: 16 },
  );
  const timers = new Worker(
    QUEUES.timers,
    dispatch(QUEUES.timers, {
      'lift-action': (job) => liftAction(job, deps.agents),
      'fleet-records': (job) => recordFleetHold(job, deps.fleet),
      'approval-timer': (job) => approvalTimer(job, deps.approvals),
      'approval-timers-cancel': (job) => cancelApprovalTimers(job, { db: deps.db, timers: deps.queues.timers }),
      consequences: (job) => applyConsequences(job, deps.consequences),
      'build-packet': (job) => buildPacket(job, deps.packets),
      sweep: (job) => sweepJob(job, { ...deps, revive: { queues: [deps.queues.events, deps.queues.notify, deps.queues.timers], redis: deps.connection } }),
      'trust-daily': (job) => trustDaily(job, deps.trust),
      'audit-verify-full': async (job) => {
        parseJob('audit-verify-full', job.data);
        const { verification, alerted } = await runScheduledAuditVerify({ db: deps.db, clock: deps.clock });
        if (!verification.ok) deps.logger.error({ firstBroken: verification.firstBroken, alerted }, 'the scheduled full audit verify found the chain broken');
        return verification.ok ? `ok: ${verification.entries} entries` : `broken at ${verification.firstBroken?.seq}${alerted ? ' (announced)' : ''}`;
      },
    }),
    { ...common, concurrency: 4 },
  );
  const notifier = new Worker(QUEUES.notify, (job: Job, token?: string) => notify(job, token, { ...deps.notify, redis: deps.connection }), { ...common, concurrency: 8 });
  // While Redis is away every worker reports each failed reconnect: keep it to a few lines a minute.
  const limitedLog = createLimitedLog(deps.logger);
  for (const worker of [events, timers, notifier]) {
    worker.on('failed', (job, err) => {
      const final = !job || job.attemptsMade >= (job.opts.attempts ?? 1) || err.name === 'UnrecoverableError';
      const entry = { queue: worker.name, jobId: job?.id, job: job?.name, attempts: job?.attemptsMade, err: err.message };
      if (job && err.message === STALL_FAILURE) {
        // Its workers kept dying while running it: the sweep puts it back (a bounded number of times).
        deps.logger.warn({ ...entry, maxRevivals: MAX_REVIVALS }, 'job failed by stalling; the sweep puts it back');
      } else if (final) {
        // Never silently dropped: a job that will not run again is logged and counted.
        deps.logger.error(entry, 'job failed for good');
        deps.metrics.jobsFailed.inc({ queue: worker.name });
      } else {
        // Retries of the same kind of job fail alike while Postgres or a platform is away: one line
        // per queue and job name a minute (the final failure above is always logged).
        limitedLog('warn', `job-retry:${worker.name}:${job?.name ?? ''}`, entry, 'job failed; it will be retried');
      }
    });
    worker.on('error', (err) => limitedLog('warn', `worker-error:${worker.name}`, { queue: worker.name, err: err.message }, 'worker error'));
  }
  // The repeating jobs. A Redis that loses its data (no persistence, a failover) loses their
  // schedulers too, and with them the sweep that rebuilds every other lost timer: a watchdog puts
  // back any that is gone (only then: upserting runs the job at once).
  const schedules: { queue: Queue; name: string; every: number }[] = [
    { queue: deps.queues.timers, name: SWEEP_JOB, every: SWEEP_EVERY_MS },
    { queue: deps.queues.timers, name: TRUST_DAILY_JOB, every: TRUST_DAILY_EVERY_MS },
    { queue: deps.queues.timers, name: AUDIT_VERIFY_FULL_JOB, every: AUDIT_VERIFY_FULL_EVERY_MS },
    // Policy emails resolved to Slack users now (a scheduler with `every` runs at once) and every half hour.
    ...(deps.notify.slack ? [{ queue: deps.queues.notify, name: SLACK_DIRECTORY_JOB, every: SLACK_DIRECTORY_EVERY_MS }] : []),
  ];
  const schedule = (s: (typeof schedules)[number]) => s.queue.upsertJobScheduler(s.name, { every: s.every }, { name: s.name });
  for (const s of schedules) await schedule(s);
  const watchdog = setInterval(() => {
    void (async () => {
      for (const s of schedules) {
        if (await s.queue.getJobScheduler(s.name)) continue;
        await schedule(s);
        deps.logger.warn({ queue: s.queue.name, job: s.name }, 'a job scheduler was missing from Redis (data lost?); put back');
      }
    })().catch(() => undefined);
  }, deps.scheduleWatchMs ?? SWEEP_EVERY_MS);
  watchdog.unref();
  timers.on('closing', () => clearInterval(watchdog));
  await Promise.all([events.waitUntilReady(), timers.waitUntilReady(), notifier.waitUntilReady()]);
  return [events, timers, notifier];
}

/**
 * Routes a queue's jobs by name. The handlers' type lists every job the contracts put on that
 * queue, so a job without a handler does not compile; a name no contract knows fails for good.
 */
function dispatch<Q extends QueueName>(queue: Q, handlers: { [N in JobsOn<Q>]: (job: Job) => Promise<unknown> }): (job: Job) => Promise<unknown> {
  const byName: Record<string, ((job: Job) => Promise<unknown>) | undefined> = handlers;
  return async (job) => {
    const run = Object.hasOwn(byName, job.name) ? byName[job.name] : undefined;
    if (!run) throw new UnrecoverableError(`unknown ${queue} job ${job.name}`);
    return run(job);
  };
}
