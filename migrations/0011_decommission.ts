import { sql, type Kysely } from 'kysely';

/**
 * Decommissioning: an agent retired for good keeps its row (its id stays reserved, its history
 * stays readable) with status `decommissioned` and who retired it, when and why.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table agents drop constraint if exists agents_status_check`.execute(db);
  await sql`alter table agents add constraint agents_status_check check (status in ('active','narrowed','contained','revoked','decommissioned'))`.execute(db);
  await db.schema
    .alterTable('agents')
    .addColumn('decommissioned_at', 'timestamptz')
    .addColumn('decommissioned_by', 'text')
    .addColumn('decommission_reason', 'text')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('agents').dropColumn('decommissioned_at').dropColumn('decommissioned_by').dropColumn('decommission_reason').execute();
  await sql`alter table agents drop constraint if exists agents_status_check`.execute(db);
  await sql`alter table agents add constraint agents_status_check check (status in ('active','narrowed','contained','revoked'))`.execute(db);
}
