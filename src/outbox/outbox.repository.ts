import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { DbOrTrx } from '../db/database.js';
import type { z } from 'zod';
import type { DomainEvent, EventType } from '../domain/events.js';
import { JOBS, type JobName, type JobPayload, type QueueName } from '../queue/job-contracts.js';
import { tracing, type TraceCarrier } from '../observability/tracing.js';

export { QUEUES, type QueueName } from '../queue/job-contracts.js';

/** One job for the outbox: its name picks the queue and the payload's type (src/queue/job-contracts.ts). */
export interface OutboxJob<N extends JobName> {
  jobName: N;
  payload: JobPayload<N>;
  /** When the job should run (a delayed job); now by default. */
  runAt?: Date;
}

/**
 * Writes a job into the outbox inside the caller's transaction; the relay hands it to BullMQ on the
 * queue its contract names. The payload is checked against the contract here too, so a job its
 * worker would refuse fails the transaction that wrote it instead of failing later, unseen.
 */
export async function addOutboxJob<N extends JobName>(trx: DbOrTrx, job: OutboxJob<N>, now: Date, id: string = randomUUID()): Promise<string> {
  const contract: { queue: QueueName; payload: z.ZodType } = JOBS[job.jobName];
  const checked = contract.payload.safeParse(job.payload);
  if (!checked.success) throw new Error(`outbox job ${job.jobName}: the payload does not match its contract: ${checked.error.issues[0]?.message ?? 'invalid'}`);
  // One statement: the row, and a notification delivered on commit (collapsed with the others of
  // the same transaction) that wakes every relay.
  const runAt = job.runAt ?? now;
  // With tracing on, the writer's trace goes with the row: the relay and the job continue it.
  const traceContext = tracing ? tracing.capture() : undefined;
  await sql`
    with added as (
      insert into outbox (id, queue, job_name, payload, run_at, created_at, trace_context)
      values (${id}, ${contract.queue}, ${job.jobName}, ${JSON.stringify(job.payload)}::jsonb, ${runAt}, ${now}, ${traceContext ? JSON.stringify(traceContext) : null}::jsonb)
      returning id)
    select pg_notify('armalo_outbox', '') from added`.execute(trx);
  return id;
}

/** Records a domain event: its id is the outbox row id, the BullMQ job id and the webhook delivery id. */
export async function emitEvent<T extends Record<string, unknown>>(
  trx: DbOrTrx,
  type: EventType,
  data: { agentId: string } & T,
  now: Date,
): Promise<DomainEvent<T>> {
  const event: DomainEvent<T> = { id: randomUUID(), type, createdAt: now.toISOString(), data };
  await addOutboxJob(trx, { jobName: type, payload: event }, now, event.id);
  return event;
}

export interface ClaimedOutboxRow {
  id: string;
  queue: string;
  job_name: string;
  payload: unknown;
  run_at: Date;
  created_at: Date;
  trace_context: TraceCarrier | null;
}

/**
 * Claims unpublished rows. `skip locked` lets several relays (one per replica) share the table
 * without handing the same row to BullMQ twice at once; BullMQ's job id dedupes the rest. Parked
 * rows (failed too often) are no longer claimed.
 */
export async function claimUnpublished(trx: DbOrTrx, limit: number): Promise<ClaimedOutboxRow[]> {
  const { rows } = await sql<ClaimedOutboxRow>`
    select id, queue, job_name, payload, run_at, created_at, trace_context from outbox
    where published_at is null and parked_at is null
    order by created_at
    limit ${limit}
    for update skip locked`.execute(trx);
  return rows;
}

/**
 * With no events webhook (the relay's `skipEvents`): takes up to `limit` unpublished rows, oldest
 * first, skipping rows another relay holds, and marks the domain events among them published in
 * the same statement, outside a transaction. Answers how many rows it took and how many it
 * marked: the others are left for `claimUnpublished`. A burst of registrations writes only event
 * rows: one statement per pass instead of a transaction of four.
 */
export async function markEventRowsPublished(db: DbOrTrx, eventJobNames: readonly string[], limit: number, now: Date): Promise<{ taken: number; marked: number }> {
  const { rows } = await sql<{ taken: number; marked: number }>`
    with taken as (
      select id, queue, job_name from outbox
      where published_at is null and parked_at is null
      order by created_at
      limit ${limit}
      for update skip locked),
    marked as (
      update outbox set published_at = ${now}
      from taken t
      where outbox.id = t.id and t.queue = 'events' and t.job_name = any(${[...eventJobNames]}::text[])
      returning 1)
    select (select count(*) from taken)::int as taken, (select count(*) from marked)::int as marked`.execute(db);
  return rows[0] ?? { taken: 0, marked: 0 };
}

export async function markPublished(trx: DbOrTrx, ids: string[], now: Date): Promise<void> {
  if (ids.length) await trx.updateTable('outbox').set({ published_at: now }).where('id', 'in', ids).execute();
}

export interface PublishFailure {
  id: string;
  error: string;
  /** The row itself is at fault (unknown queue, refused payload), not the queue being away. */
  rowAtFault: boolean;
}

/**
 * Counts a failed hand-over on each row and keeps its last error. A row at fault that has failed
 * `maxAttempts` times is parked: it stays in the table for inspection and is not claimed again.
 * A queue outage never parks anything (every row fails then, through no fault of its own).
 * Returns the rows parked now.
 */
export async function recordPublishFailures(
  trx: DbOrTrx,
  failures: PublishFailure[],
  options: { maxAttempts: number; now: Date },
): Promise<{ id: string; queue: string; job_name: string; attempts: number; last_error: string | null }[]> {
  const parked = [];
  for (const f of failures) {
    const row = await trx
      .updateTable('outbox')
      .set((eb) => ({
        attempts: eb('attempts', '+', 1),
        last_error: f.error.slice(0, 500),
        parked_at: f.rowAtFault ? sql<Date | null>`case when attempts + 1 >= ${options.maxAttempts} then ${options.now}::timestamptz else null end` : null,
      }))
      .where('id', '=', f.id)
      .returning(['id', 'queue', 'job_name', 'attempts', 'last_error', 'parked_at'])
      .executeTakeFirst();
    if (row?.parked_at) parked.push({ id: row.id, queue: row.queue, job_name: row.job_name, attempts: row.attempts, last_error: row.last_error });
  }
  return parked;
}

/** Rows waiting to be handed over (parked rows are not waiting: they are counted apart). */
export async function countUnpublished(db: DbOrTrx): Promise<number> {
  const row = await db.selectFrom('outbox').select((eb) => eb.fn.countAll<string>().as('n')).where('published_at', 'is', null).where('parked_at', 'is', null).executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Rows parked after failing too often: each needs a person to look at it. */
export async function countParked(db: DbOrTrx): Promise<number> {
  const row = await db.selectFrom('outbox').select((eb) => eb.fn.countAll<string>().as('n')).where('published_at', 'is', null).where('parked_at', 'is not', null).executeTakeFirst();
  return Number(row?.n ?? 0);
}
