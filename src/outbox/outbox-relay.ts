import pg from 'pg';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import { createLimitedLog, type LimitedLog, type Logger } from '../observability/logger.js';
import type { Queues } from '../queue/queues.js';
import { tracing, type RelaySpan } from '../observability/tracing.js';
import { claimUnpublished, markEventRowsPublished, markPublished, recordPublishFailures, type ClaimedOutboxRow, type PublishFailure } from './outbox.repository.js';
import type { QueueName } from './outbox.repository.js';
import { EVENT_TYPES } from '../domain/events.js';

const EVENT_JOB_NAMES: ReadonlySet<string> = new Set(EVENT_TYPES);

export const OUTBOX_NOTIFY_CHANNEL = 'armalo_outbox';

export interface OutboxRelayOptions {
  db: Db;
  databaseUrl: string;
  queues: Queues;
  clock: Clock;
  logger: Logger;
  /** Fallback poll when no notification arrives (and the retry pace when Redis is down). */
  pollMs?: number;
  batchSize?: number;
  /** Failed hand-overs after which a row at fault (unknown queue, refused payload) is parked. */
  maxAttempts?: number;
  /**
   * No outbound events webhook is configured (`ARMALO_EVENTS_WEBHOOK_URL`): a domain event's only
   * consumer is that webhook, so its row is marked published without a job (the job would end at
   * once as `no_webhook`). The row stays in Postgres as the record. Approval callbacks, which share
   * the events queue, still go. Keep the same events webhook settings on every replica that runs the
   * worker.
   */
  skipEvents?: boolean;
}

/** The queue is away (Redis down): every row fails, none is at fault, so none is parked. */
class QueueUnavailableError extends Error {}

/**
 * Moves committed outbox rows into BullMQ. Each row's id is its job id, so a row handed over twice
 * (a crash between add and mark, two relays) is still one job. If Redis is down the rows stay in
 * Postgres and go out once it is back: nothing acknowledged is lost.
 */
export class OutboxRelay {
  private readonly pollMs: number;
  private readonly batchSize: number;
  private readonly maxAttempts: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private listener: pg.Client | undefined;
  private failing = false;
  private readonly limitedLog: LimitedLog;

  constructor(private readonly opts: OutboxRelayOptions) {
    this.limitedLog = createLimitedLog(opts.logger);
    this.pollMs = opts.pollMs ?? 1000;
    this.batchSize = opts.batchSize ?? 100;
    this.maxAttempts = opts.maxAttempts ?? 5;
  }

  async start(): Promise<void> {
    await this.listen();
    this.timer = setInterval(() => this.wake(), this.pollMs);
    this.timer.unref();
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
    await this.listener?.end().catch(() => undefined);
  }

  /**
   * A writer in this process committed outbox rows. Every outbox write also notifies the channel
   * this relay listens on, so while it listens the notification wakes it; waking it here as well
   * made a second pass per commit that found nothing. Without a listener, it wakes now.
   */
  written(): void {
    if (!this.listener) this.wake();
  }

  /** Runs a pass now (coalescing with one already running). */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    // A use case's commit wakes the relay from inside its request: the batch must not join that
    // request's trace (each row continues its own trace, in addJobs).
    this.running = (tracing ? tracing.detached(() => this.drain()) : this.drain()).finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  }

  /**
   * Publishes until the outbox is empty or a hand-over fails. A batch with a failed row ends the
   * pass, so a row at fault is retried at the poll pace, not in a tight loop.
   */
  async drain(): Promise<void> {
    for (;;) {
      // No events webhook and no tracing (which gives each row a relay span): the domain events
      // are marked published in one statement, and the transaction below runs only when other
      // rows wait behind them.
      if (this.opts.skipEvents === true && !tracing) {
        const { taken, marked, failed } = await this.markSkippedEvents();
        if (failed) return;
        if (taken === marked) {
          if (taken < this.batchSize) return;
          continue;
        }
      }
      const { claimed, failed } = await this.publishBatch();
      if (claimed < this.batchSize || failed) return;
    }
  }

  private async markSkippedEvents(): Promise<{ taken: number; marked: number; failed: boolean }> {
    try {
      const { taken, marked } = await markEventRowsPublished(this.opts.db, EVENT_TYPES, this.batchSize, this.opts.clock.now());
      // Recovered only if nothing was left for the hand-over to BullMQ (which may still fail).
      if (this.failing && taken === marked) {
        this.opts.logger.info('outbox relay recovered');
        this.failing = false;
      }
      return { taken, marked, failed: false };
    } catch (err) {
      this.cannotPublish(err);
      return { taken: 0, marked: 0, failed: true };
    }
  }

  private async publishBatch(): Promise<{ claimed: number; failed: boolean }> {
    const { db, queues, clock, logger } = this.opts;
    try {
      // Failures are recorded in the same transaction as the successes, and it commits: the
      // bookkeeping is never rolled back with the error, and one bad row does not hold up the others.
      const { claimed, failures, parked } = await db.transaction().execute(async (trx) => {
        const rows = await claimUnpublished(trx, this.batchSize);
        if (rows.length === 0) return { claimed: 0, failures: [] as PublishFailure[], parked: [] };
        const { published, failures } = await this.addJobs(queues, rows, clock.now());
        await markPublished(trx, published, clock.now());
        const parked = await recordPublishFailures(trx, failures, { maxAttempts: this.maxAttempts, now: clock.now() });
        return { claimed: rows.length, failures, parked };
      });
      for (const row of parked) {
        // Once per row: it is parked now and never claimed again.
        logger.error({ outboxId: row.id, queue: row.queue, jobName: row.job_name, attempts: row.attempts, lastError: row.last_error }, 'outbox row parked after repeated failures; it stays in Postgres (outbox.parked_at) for inspection');
      }
      const outage = failures.find((f) => !f.rowAtFault);
      if (outage) throw new QueueUnavailableError(outage.error);
      if (this.failing) logger.info('outbox relay recovered');
      this.failing = false;
      return { claimed, failed: failures.length > 0 };
    } catch (err) {
      this.cannotPublish(err);
      return { claimed: 0, failed: true };
    }
  }

  /** A pass failed (Postgres or Redis away): said once until the relay recovers; the rows stay. */
  private cannotPublish(err: unknown): void {
    if (!this.failing) this.limitedLog('warn', 'cannot-publish', { err: (err as Error).message }, 'outbox relay cannot publish; rows stay in Postgres and will be retried');
    this.failing = true;
  }

  /**
   * Hands rows to their queues, a bulk add per queue. When a bulk add fails, its rows go one by one
   * so a row the queue refuses is isolated; if the queue's connection is not up, the failure is an
   * outage and the remaining rows are not tried.
   */
  private async addJobs(queues: Queues, rows: ClaimedOutboxRow[], now: Date): Promise<{ published: string[]; failures: PublishFailure[] }> {
    // With tracing on, each row's hand-over is a span in the trace of the request that wrote it,
    // and its job carries that span as its parent (BullMQ telemetry metadata).
    const spans = tracing ? new Map(rows.map((r) => [r.id, tracing!.relaySpan({ id: r.id, queue: r.queue, jobName: r.job_name, createdAt: new Date(r.created_at), carrier: r.trace_context })])) : undefined;
    let result: { published: string[]; failures: PublishFailure[] } | undefined;
    try {
      result = await this.addJobsTraced(queues, rows, now, spans);
      return result;
    } finally {
      if (spans) {
        const failed = new Map(result?.failures.map((f) => [f.id, f.error]));
        for (const [id, span] of spans) span.end(result ? failed.get(id) : 'the hand-over failed');
      }
    }
  }

  private async addJobsTraced(queues: Queues, rows: ClaimedOutboxRow[], now: Date, spans: Map<string, RelaySpan> | undefined): Promise<{ published: string[]; failures: PublishFailure[] }> {
    const published: string[] = [];
    const failures: PublishFailure[] = [];
    const byQueue = new Map<QueueName, ClaimedOutboxRow[]>();
    const skipEvents = this.opts.skipEvents === true;
    for (const row of rows) {
      const name = row.queue as QueueName;
      if (skipEvents && name === 'events' && EVENT_JOB_NAMES.has(row.job_name)) {
        published.push(row.id);
        spans?.get(row.id)?.end(undefined);
        spans?.delete(row.id);
        continue;
      }
      if (!Object.hasOwn(queues, name)) {
        failures.push({ id: row.id, error: `outbox row names unknown queue ${row.queue}`, rowAtFault: true });
        continue;
      }
      byQueue.set(name, [...(byQueue.get(name) ?? []), row]);
    }
    const job = (row: ClaimedOutboxRow) => ({
      name: row.job_name,
      data: row.payload,
      opts: {
        jobId: row.id,
        delay: Math.max(0, new Date(row.run_at).getTime() - now.getTime()),
        ...(spans ? { telemetry: { metadata: spans.get(row.id)!.jobMetadata } } : {}),
      },
    });
    for (const [name, list] of byQueue) {
      const queue = queues[name];
      try {
        await queue.addBulk(list.map(job));
        published.push(...list.map((r) => r.id));
        continue;
      } catch {
        // Find out which row it was (the job id makes a row added twice one job).
      }
      for (const [i, row] of list.entries()) {
        try {
          const span = spans?.get(row.id);
          // Inside the row's span, BullMQ's own producer span (and so the job) nests under it.
          await (span ? span.run(() => queue.add(row.job_name, row.payload, job(row).opts)) : queue.add(row.job_name, row.payload, job(row).opts));
          published.push(row.id);
        } catch (err) {
          const error = (err as Error).message;
          // A cheap read tells an outage (it fails too) from a row the queue refuses (it works).
          const connected = await queue.getJobCounts('waiting').then(() => true, () => false);
          if (connected) {
            failures.push({ id: row.id, error, rowAtFault: true });
            continue;
          }
          failures.push(...list.slice(i).map((r) => ({ id: r.id, error: `queue ${name} is unavailable: ${error}`, rowAtFault: false })));
          break;
        }
      }
    }
    return { published, failures };
  }

  /** LISTEN for commits that wrote outbox rows, on a connection of its own; reconnects on loss. */
  private async listen(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ connectionString: this.opts.databaseUrl });
    client.on('notification', () => this.wake());
    client.on('error', () => {
      this.listener = undefined;
      client.end().catch(() => undefined);
      if (!this.stopped) setTimeout(() => void this.listen().catch(() => undefined), 1000).unref();
    });
    try {
      await client.connect();
      await client.query(`listen ${OUTBOX_NOTIFY_CHANNEL}`);
      this.listener = client;
    } catch (err) {
      this.limitedLog('warn', 'cannot-listen', { err: (err as Error).message }, 'outbox relay cannot LISTEN; polling only');
      await client.end().catch(() => undefined);
      if (!this.stopped) setTimeout(() => void this.listen().catch(() => undefined), 5000).unref();
    }
  }
}
