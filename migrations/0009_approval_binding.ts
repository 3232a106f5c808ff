import { sql, type Kysely } from 'kysely';

/**
 * Approvals: `reminded_at` records that a request's reminder went out, so the sweep that rebuilds
 * lost timers from Postgres (after Redis lost its data) never reminds twice; the partial index
 * keeps that sweep's scan of pending requests cheap.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('approval_requests').addColumn('reminded_at', 'timestamptz').execute();
  await sql`create index approval_requests_pending_idx on approval_requests (created_at, id) where status = 'pending'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists approval_requests_pending_idx`.execute(db);
  await db.schema.alterTable('approval_requests').dropColumn('reminded_at').execute();
}
