import { sql, type Kysely } from 'kysely';

/**
 * Incidents (one per agent from the first narrow/contain/revoke until restore), references to the
 * chat messages we posted about them (so a retried job updates instead of posting twice),
 * confirmations for two-step commands, and chat identities resolved from the policy's emails.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('incidents')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('open','closed')`))
    .addColumn('opened_by_action_id', 'uuid', (c) => c.notNull())
    .addColumn('opened_at', 'timestamptz', (c) => c.notNull())
    .addColumn('closed_at', 'timestamptz')
    .addColumn('closed_by', 'text')
    .execute();
  // At most one open incident per agent.
  await sql`create unique index incidents_one_open_uq on incidents (agent_id) where status = 'open'`.execute(db);

  await db.schema.alterTable('agent_actions').addColumn('incident_id', 'uuid').execute();
  await db.schema.alterTable('agent_actions').addColumn('idempotency_key', 'text').execute();
  // The answer given for the action, so a retried request gets the same answer instead of a second action.
  await db.schema.alterTable('agent_actions').addColumn('result', 'jsonb').execute();
  await sql`create unique index agent_actions_idempotency_uq on agent_actions (idempotency_key) where idempotency_key is not null`.execute(db);

  await db.schema
    .createTable('chat_messages')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('channel', 'text', (c) => c.notNull())
    .addColumn('ts', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('confirmations')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('revoke','restore')`))
    .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('decided_at', 'timestamptz')
    .addColumn('decided_by', 'text')
    .addColumn('outcome', 'text')
    .execute();

  await db.schema
    .createTable('chat_identities')
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text')
    .addColumn('resolved_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('chat_identities_pk', ['platform', 'email'])
    .execute();
  await db.schema.createIndex('chat_identities_user_idx').on('chat_identities').columns(['platform', 'user_id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('chat_identities').execute();
  await db.schema.dropTable('confirmations').execute();
  await db.schema.dropTable('chat_messages').execute();
  await sql`drop index agent_actions_idempotency_uq`.execute(db);
  await db.schema.alterTable('agent_actions').dropColumn('result').execute();
  await db.schema.alterTable('agent_actions').dropColumn('idempotency_key').execute();
  await db.schema.alterTable('agent_actions').dropColumn('incident_id').execute();
  await db.schema.dropTable('incidents').execute();
}
