import { sql, type Kysely } from 'kysely';

/** Approval requests with their route snapshot, and each person's decision on them. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('approval_requests')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('context', 'jsonb', (c) => c.notNull())
    .addColumn('justification', 'text', (c) => c.notNull())
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('idempotency_key', 'text')
    .addColumn('callback_url', 'text')
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending','approved','denied','expired','cancelled')`))
    .addColumn('route', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('escalated_at', 'timestamptz')
    .addColumn('decided_at', 'timestamptz')
    .addColumn('final_reason', 'text')
    .addColumn('grant_until', 'timestamptz')
    .addColumn('consumed_at', 'timestamptz')
    .execute();
  await sql`create unique index approval_requests_idempotency_uq on approval_requests (requested_by, idempotency_key) where idempotency_key is not null`.execute(db);
  await db.schema.createIndex('approval_requests_agent_status_idx').on('approval_requests').columns(['agent_id', 'status', 'action']).execute();

  await db.schema
    .createTable('approval_decisions')
    .addColumn('request_id', 'uuid', (c) => c.notNull().references('approval_requests.id'))
    .addColumn('person_key', 'text', (c) => c.notNull())
    .addColumn('decision', 'text', (c) => c.notNull().check(sql`decision in ('approve','deny')`))
    .addColumn('reason', 'text')
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('via', 'text', (c) => c.notNull())
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    // One person decides once.
    .addPrimaryKeyConstraint('approval_decisions_pk', ['request_id', 'person_key'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('approval_decisions').execute();
  await db.schema.dropTable('approval_requests').execute();
}
