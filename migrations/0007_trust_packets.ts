import { sql, type Kysely } from 'kysely';

/** Trust packets: each a snapshot with its content hash and the audit chain head it was built from. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('trust_packets')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('building','ready','failed')`))
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('audience', 'text')
    .addColumn('workflow', 'text')
    .addColumn('deliver_to', 'jsonb')
    .addColumn('content', 'jsonb')
    .addColumn('content_hash', 'text')
    .addColumn('audit_head_seq', 'bigint')
    .addColumn('audit_head_hash', 'text')
    .addColumn('error', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('ready_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('trust_packets_agent_idx').on('trust_packets').columns(['agent_id', 'created_at']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('trust_packets').execute();
}
