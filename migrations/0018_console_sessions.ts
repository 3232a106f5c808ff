import { sql, type Kysely } from 'kysely';

/**
 * The web console's sign-in (issue 14). Only SHA-256 digests of the one-time link tokens and of the
 * session cookies are stored: a copy of the database (a backup, a replica) opens no session.
 *
 * - `console_login_tokens`: a link sent privately by `/armalo console`; 5 minutes, spent once, and
 *   only by the POST of the sign-in form (`used_at`).
 * - `console_sessions`: an open session of a chat person (platform, user id and the emails the
 *   platform resolved at sign-in); 8 hours; `revoked_at` ends it server-side (sign-out, or an admin).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('console_login_tokens')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('platform', 'text', (c) => c.notNull().check(sql`platform in ('slack','teams')`))
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('emails', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('console_login_tokens_user').on('console_login_tokens').columns(['platform', 'user_id', 'created_at']).execute();
  await db.schema
    .createTable('console_sessions')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('platform', 'text', (c) => c.notNull().check(sql`platform in ('slack','teams')`))
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('emails', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('revoked_at', 'timestamptz')
    .addColumn('revoked_by', 'text')
    .execute();
  await db.schema.createIndex('console_sessions_user').on('console_sessions').columns(['platform', 'user_id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('console_sessions').execute();
  await db.schema.dropTable('console_login_tokens').execute();
}
