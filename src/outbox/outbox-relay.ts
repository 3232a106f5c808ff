import pg from 'pg';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import { createLimitedLog, type LimitedLog, type Logger } from '../observability/logger.js';
import type { Queues } from '../queue/queues.js';
import { claimUnpublished, markPublished, markPublishFailed, type ClaimedOutboxRow } from './outbox.repository.js';
import type { QueueName } from './outbox.repository.js';

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
}

/**
 * Moves committed outbox rows into BullMQ. Each row's id is its job id, so a row handed over twice
 * (a crash between add and mark, two relays) is still one job. If Redis is down the rows stay in
 * Postgres and go out once it is back: nothing acknowledged is lost.
 */
export class OutboxRelay {
  private readonly pollMs: number;
  private readonly batchSize: number;
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

  /** Runs a pass now (coalescing with one already running). */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  }

  /** Publishes until the outbox is empty or a publish fails. Returns the number of rows moved. */
  async drain(): Promise<void> {
    for (;;) {
      const moved = await this.publishBatch();
      if (moved < this.batchSize) return;
    }
  }

  private async publishBatch(): Promise<number> {
    const { db, queues, clock, logger } = this.opts;
    try {
      const count = await db.transaction().execute(async (trx) => {
        const rows = await claimUnpublished(trx, this.batchSize);
        if (rows.length === 0) return 0;
        try {
          await this.addJobs(queues, rows, clock.now());
        } catch (err) {
          await markPublishFailed(trx, rows.map((r) => r.id), (err as Error).message);
          throw err;
        }
        await markPublished(trx, rows.map((r) => r.id), clock.now());
        return rows.length;
      });
      if (this.failing) logger.info('outbox relay recovered');
      this.failing = false;
      return count;
    } catch (err) {
      if (!this.failing) this.limitedLog('warn', 'cannot-publish', { err: (err as Error).message }, 'outbox relay cannot publish; rows stay in Postgres and will be retried');
      this.failing = true;
      return 0;
    }
  }

  private async addJobs(queues: Queues, rows: ClaimedOutboxRow[], now: Date): Promise<void> {
    const byQueue = new Map<QueueName, ClaimedOutboxRow[]>();
    for (const row of rows) {
      const name = row.queue as QueueName;
      if (!queues[name]) throw new Error(`outbox row ${row.id} names unknown queue ${row.queue}`);
      byQueue.set(name, [...(byQueue.get(name) ?? []), row]);
    }
    for (const [name, list] of byQueue) {
      await queues[name].addBulk(
        list.map((row) => ({
          name: row.job_name,
          data: row.payload,
          opts: { jobId: row.id, delay: Math.max(0, new Date(row.run_at).getTime() - now.getTime()) },
        })),
      );
    }
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
