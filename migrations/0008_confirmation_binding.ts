import { sql, type Kysely } from 'kysely';

/**
 * Confirmations remember who asked as a person (platform, user id, resolved emails, policy member
 * key), so a second-person check compares people, not actor strings; and what they were asked
 * about (the open incident, the restricting actions in force, the agent's version), so a click
 * after the incident ended, or after a newer restriction, cannot lift it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('confirmations')
    // slack | teams | api; null on rows made before this migration (requested_by says it then).
    .addColumn('requested_platform', 'text')
    .addColumn('requested_user_id', 'text')
    .addColumn('requested_emails', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('requested_person', 'text')
    .addColumn('incident_id', 'uuid')
    .addColumn('action_ids', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('agent_version', 'bigint')
    .addColumn('decided_reason', 'text')
    .execute();
  // Open confirmations of an agent are cancelled when its incident ends or a new one opens.
  await sql`create index confirmations_open_idx on confirmations (agent_id) where decided_at is null`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index confirmations_open_idx`.execute(db);
  await db.schema
    .alterTable('confirmations')
    .dropColumn('decided_reason')
    .dropColumn('agent_version')
    .dropColumn('action_ids')
    .dropColumn('incident_id')
    .dropColumn('requested_person')
    .dropColumn('requested_emails')
    .dropColumn('requested_user_id')
    .dropColumn('requested_platform')
    .execute();
}
