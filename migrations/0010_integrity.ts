import { sql, type Kysely } from 'kysely';

/**
 * Integrity hardening: inbound webhook events held until their agent exists, Slack requests seen
 * (replays are acknowledged and change nothing), and outbox rows parked after repeated failures.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // An event for an agent we do not know yet is kept, not spent: it is applied when the agent is
  // registered. The event id only enters inbound_events (the dedupe table) once it is applied.
  await db.schema
    .createTable('held_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('agent_id', 'text', (c) => c.notNull())
    .addColumn('event', 'jsonb', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull())
    .addColumn('applied_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('held_events_waiting_idx')
    .on('held_events')
    .column('agent_id')
    .where(sql.ref('applied_at'), 'is', null)
    .execute();

  // One row per Slack request we acted on (trigger id, event id, or the signature itself).
  await db.schema
    .createTable('slack_requests')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('slack_requests_received_idx').on('slack_requests').column('received_at').execute();

  // A row that failed too often is parked: kept for inspection, no longer retried.
  await db.schema.alterTable('outbox').addColumn('parked_at', 'timestamptz').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('outbox').dropColumn('parked_at').execute();
  await db.schema.dropTable('slack_requests').execute();
  await db.schema.dropTable('held_events').execute();
}
