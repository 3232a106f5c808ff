import { sql, type Kysely } from 'kysely';

/**
 * Retried restores over the API (`Idempotency-Key`): the answer given to a restore that did not end
 * as an agent action of its own — a restore waiting for a second person (202), or a restore by
 * selector — stored with the effect in one transaction, so a retry with the same key answers the
 * same confirmation or result instead of asking again or acting again.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('idempotent_answers')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('status', 'smallint', (c) => c.notNull())
    .addColumn('body', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('idempotent_answers').execute();
}
