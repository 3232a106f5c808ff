import type { Kysely } from 'kysely';

/** Teams conversation references (stored when the bot is installed or spoken to) for proactive messages. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('teams_conversations')
    .addColumn('conversation_id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('reference', 'jsonb', (c) => c.notNull())
    .addColumn('aad_object_id', 'text')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('teams_conversations_user_idx').on('teams_conversations').column('aad_object_id').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('teams_conversations').execute();
}
