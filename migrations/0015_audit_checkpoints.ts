import { sql, type Kysely } from 'kysely';

/**
 * Audit checkpoints (issue 17): a verified point of the audit chain (its seq and hash), so a verify
 * walks only the entries after the last checkpoint. The checkpoints are a hash chain of their own
 * (each covers the previous checkpoint's hash), append-only like the audit log.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('audit_checkpoints')
    .addColumn('id', 'bigint', (c) => c.primaryKey())
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    .addColumn('audit_seq', 'bigint', (c) => c.notNull())
    .addColumn('audit_hash', 'text', (c) => c.notNull())
    /** `full`: the whole chain was walked to make it; `incremental`: from the previous checkpoint. */
    .addColumn('verified', 'text', (c) => c.notNull().check(sql`verified in ('full','incremental')`))
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await sql`
    create trigger audit_checkpoints_no_change before update or delete on audit_checkpoints
    for each row execute function audit_log_append_only()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('audit_checkpoints').execute();
}
