import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { z } from 'zod';
import type { DbOrTrx } from '../db/database.js';
import { auditEntryHash } from '../domain/audit-chain.js';
import type { AuditInput } from '../audit/audit.repository.js';
import type { EventType } from '../domain/events.js';
import { JOBS, type JobName, type QueueName } from '../queue/job-contracts.js';
import type { OutboxJob } from '../outbox/outbox.repository.js';
import { tracing } from '../observability/tracing.js';
import { chunks } from './fleet.repository.js';

/**
 * The writes of a fleet action that would otherwise take one round trip per agent: its audit
 * entries and its outbox rows, a chunk of rows per statement. Same rows, same chain as
 * `appendAudit` and `addOutboxJob` write one at a time.
 */

/**
 * Appends entries to the audit chain in order, inside the caller's transaction. Why it stays one
 * verifiable chain: the head row is locked first (`for update`, held to the commit, the lock every
 * append takes), each entry's hash is `auditEntryHash` over the previous entry's hash (the function
 * the verifier recomputes), with the payload round-tripped through JSON as jsonb stores it, and the
 * head moves to the last entry in the same transaction. Nothing else can append in between.
 */
export async function appendAuditEntries(trx: DbOrTrx, entries: AuditInput[]): Promise<void> {
  if (entries.length === 0) return;
  if (!trx.isTransaction) throw new Error('audit entries must be appended inside the transaction that commits them');
  const { rows } = await sql<{ seq: string; hash: string }>`select seq::text as seq, hash from audit_head where id = 1 for update`.execute(trx);
  const head = rows[0];
  if (!head) throw new Error('the audit head row is missing');
  let seq = BigInt(head.seq);
  let prev = head.hash;
  for (const part of chunks(entries, 500)) {
    const values = part.map((e) => {
      seq++;
      const payload: unknown = JSON.parse(JSON.stringify(e.payload ?? {}));
      const hash = auditEntryHash(prev, { seq: seq.toString(), at: e.at, actor: e.actor, action: e.action, subject: e.subject, payload });
      const row = { seq: seq.toString(), at: e.at, actor: e.actor, action: e.action, subject: e.subject, payload: JSON.stringify(payload), prev_hash: prev, hash };
      prev = hash;
      return row;
    });
    await trx.insertInto('audit_log').values(values).execute();
  }
  await trx.updateTable('audit_head').set({ seq: seq.toString(), hash: prev }).where('id', '=', 1).execute();
}

/** Outbox jobs in a few statements (each payload checked against its contract, as addOutboxJob does), and one wake-up on commit. */
export async function addOutboxJobs(trx: DbOrTrx, jobs: (OutboxJob<JobName> & { id?: string })[], now: Date): Promise<void> {
  if (jobs.length === 0) return;
  // With tracing on, the writer's trace goes with the rows: the relay and the jobs continue it.
  const traceContext = tracing ? tracing.capture() : undefined;
  for (const part of chunks(jobs, 500)) {
    const values = part.map((job) => {
      const contract: { queue: QueueName; payload: z.ZodType } = JOBS[job.jobName];
      const checked = contract.payload.safeParse(job.payload);
      if (!checked.success) throw new Error(`outbox job ${job.jobName}: the payload does not match its contract: ${checked.error.issues[0]?.message ?? 'invalid'}`);
      return { id: job.id ?? randomUUID(), queue: contract.queue, job_name: job.jobName, payload: JSON.stringify(job.payload), run_at: job.runAt ?? now, created_at: now, trace_context: traceContext ? JSON.stringify(traceContext) : null };
    });
    await trx.insertInto('outbox').values(values).execute();
  }
  await sql`select pg_notify('armalo_outbox', '')`.execute(trx);
}

/** A domain event as an outbox job (what `emitEvent` writes): its id is the row id, the job id and the delivery id. */
export function eventJob(type: EventType, data: { agentId: string } & Record<string, unknown>, now: Date): OutboxJob<JobName> & { id: string } {
  const id = randomUUID();
  return { id, jobName: type, payload: { id, type, createdAt: now.toISOString(), data } as never };
}
