import { sql, type Kysely } from 'kysely';

/**
 * The system of record: agents and their grants, the actions taken on them (narrow, contain,
 * revoke, restore), the hash-chained audit log and the transactional outbox.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // One global, monotonically increasing version for permission state: every committed change to
  // an agent takes the next value, so a process can ask "what changed after version N?".
  await sql`create sequence permission_version_seq`.execute(db);

  await db.schema
    .createTable('agents')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('risk_tier', 'text', (c) => c.notNull().check(sql`risk_tier in ('low','medium','high','critical')`))
    .addColumn('status', 'text', (c) =>
      c.notNull().defaultTo('active').check(sql`status in ('active','narrowed','contained','revoked')`),
    )
    .addColumn('version', 'bigint', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_by', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('agents_version_idx').on('agents').column('version').execute();

  await db.schema
    .createTable('grants')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('constraints', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('keep_in_containment', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('expires_at', 'timestamptz')
    .addColumn('granted_by', 'text', (c) => c.notNull())
    .addColumn('granted_at', 'timestamptz', (c) => c.notNull())
    .addColumn('removed_by', 'text')
    .addColumn('removed_at', 'timestamptz')
    .addUniqueConstraint('grants_agent_scope_uq', ['agent_id', 'scope'])
    .execute();

  await db.schema
    .createTable('agent_actions')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('narrow','contain','revoke','restore')`))
    .addColumn('scopes', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('ttl_ms', 'bigint')
    .addColumn('expires_at', 'timestamptz')
    // The grants this action changed, with their state before it: what a restore gives back.
    .addColumn('touched_grants', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('lifted_at', 'timestamptz')
    .addColumn('lifted_by', 'text')
    .addColumn('lifted_by_action_id', 'uuid')
    .addColumn('lift_reason', 'text')
    .execute();
  await db.schema
    .createIndex('agent_actions_active_idx')
    .on('agent_actions')
    .columns(['agent_id', 'created_at'])
    .where(sql.ref('lifted_at'), 'is', null)
    .execute();
  await db.schema
    .createIndex('agent_actions_expiry_idx')
    .on('agent_actions')
    .column('expires_at')
    .where(sql<boolean>`lifted_at is null and expires_at is not null`)
    .execute();

  await db.schema
    .createTable('audit_log')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('audit_log_subject_idx').on('audit_log').columns(['subject', 'seq']).execute();

  // The chain head: one row, locked by every append, so entries are chained in commit order.
  await db.schema
    .createTable('audit_head')
    .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await sql`insert into audit_head (id, seq, hash) values (1, 0, ${'0'.repeat(64)})`.execute(db);

  // Append-only: the application role can never rewrite history. (A superuser can bypass
  // triggers; the hash chain is what detects that.)
  await sql`
    create function audit_log_append_only() returns trigger language plpgsql as $$
    begin
      raise exception 'audit_log is append-only (% refused)', tg_op;
    end $$`.execute(db);
  await sql`
    create trigger audit_log_no_change before update or delete on audit_log
    for each row execute function audit_log_append_only()`.execute(db);

  await db.schema
    .createTable('outbox')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('queue', 'text', (c) => c.notNull())
    .addColumn('job_name', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('run_at', 'timestamptz', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('published_at', 'timestamptz')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_error', 'text')
    .execute();
  await db.schema
    .createIndex('outbox_unpublished_idx')
    .on('outbox')
    .column('created_at')
    .where(sql.ref('published_at'), 'is', null)
    .execute();

  // Delivery receipts for outbound webhooks: a job that runs again after a crash sees it is done.
  await db.schema
    .createTable('event_deliveries')
    .addColumn('event_id', 'uuid', (c) => c.notNull())
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('status_code', 'integer', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('delivered_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('event_deliveries_pk', ['event_id', 'target'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('event_deliveries').execute();
  await db.schema.dropTable('outbox').execute();
  await sql`drop trigger audit_log_no_change on audit_log`.execute(db);
  await sql`drop function audit_log_append_only()`.execute(db);
  await db.schema.dropTable('audit_head').execute();
  await db.schema.dropTable('audit_log').execute();
  await db.schema.dropTable('agent_actions').execute();
  await db.schema.dropTable('grants').execute();
  await db.schema.dropTable('agents').execute();
  await sql`drop sequence permission_version_seq`.execute(db);
}
