import type { Kysely } from 'kysely';

/**
 * Tracing (issue 15): the W3C trace context (`{traceparent, tracestate?}`) of the request or job
 * that wrote an outbox row, so the relay and the job it enqueues continue that trace. Null when
 * tracing is off or the row was written outside any trace.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('outbox').addColumn('trace_context', 'jsonb').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('outbox').dropColumn('trace_context').execute();
}
