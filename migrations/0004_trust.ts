import { sql, type Kysely } from 'kysely';

/** Trust data: pacts, evaluation evidence, score history, inbound event dedupe, channel subscriptions. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('pacts')
    .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('clauses', 'jsonb', (c) => c.notNull())
    .addColumn('severity', 'text', (c) => c.notNull().check(sql`severity in ('low','medium','high','critical')`))
    .addColumn('verification', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('pacts_pk', ['agent_id', 'id'])
    .execute();

  await db.schema
    .createTable('evaluations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
    .addColumn('pact_id', 'text')
    .addColumn('dimension', 'text', (c) => c.notNull())
    .addColumn('passed', 'boolean')
    .addColumn('score', 'double precision')
    .addColumn('observed_at', 'timestamptz', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('evidence_url', 'text')
    .addColumn('received_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('evaluations_agent_observed_idx').on('evaluations').columns(['agent_id', 'observed_at']).execute();

  await db.schema
    .createTable('trust_scores')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
    .addColumn('score', 'integer', (c) => c.notNull().check(sql`score between 0 and 1000`))
    .addColumn('tier', 'text', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('inputs', 'jsonb', (c) => c.notNull())
    .addColumn('computed_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('trust_scores_agent_time_idx').on('trust_scores').columns(['agent_id', 'computed_at']).execute();

  await db.schema
    .createTable('inbound_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('agent_id', 'text')
    .addColumn('received_at', 'timestamptz', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('inbound_events').execute();
  await db.schema.dropTable('trust_scores').execute();
  await db.schema.dropTable('evaluations').execute();
  await db.schema.dropTable('pacts').execute();
}
