import { sql, type Kysely } from 'kysely';

/** Channels subscribed to an agent's (or every agent's) notices, per platform. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('subscriptions')
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('channel', 'text', (c) => c.notNull())
    .addColumn('agent_pattern', 'text', (c) => c.notNull())
    .addColumn('kinds', 'jsonb', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('subscriptions_pk', ['platform', 'channel', 'agent_pattern'])
    .addCheckConstraint('subscriptions_kinds_array', sql`jsonb_typeof(kinds) = 'array'`)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('subscriptions').execute();
}
