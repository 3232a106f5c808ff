import { sql, type Kysely } from 'kysely';

/**
 * Live policy: every policy version a replica started with or reloaded, in the order recorded, and
 * every invalid policy file content seen (so its notice is posted once, whichever replica saw it).
 * A version row is inserted only when it differs from the latest one (under an advisory lock), so a
 * change seen by every replica is recorded and audited once; keyed by id rather than hash, so going
 * back to an earlier policy is recorded (and audited) as a change too.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('policy_versions')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('applied_at', 'timestamptz', (c) => c.notNull())
    .addColumn('summary', 'jsonb')
    .addColumn('policy', 'jsonb', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('policy_rejections')
    .addColumn('content_hash', 'text', (c) => c.primaryKey())
    .addColumn('seen_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('problems', 'jsonb', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('policy_rejections').execute();
  await db.schema.dropTable('policy_versions').execute();
}
