import type { Kysely } from 'kysely';

/**
 * Per-key exclusivity for chat delivery (issue 13): a job that posts or updates the messages of one
 * incident or approval request holds a lease row for that key while it talks to Slack or Teams.
 * The lease is taken and released by single statements, so no database transaction (and no
 * connection) stays open across a network call; a lease left by a killed worker expires and is
 * taken over. (It replaces the advisory-lock transaction the notifiers held.)
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('chat_leases')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('holder', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('chat_leases').execute();
}
