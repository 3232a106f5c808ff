import { sql, type Kysely } from 'kysely';

/**
 * A fleet containment in two commits (issue 17): the hold first, then the records.
 *
 * - `hold_version`: the permission version of the commit that put the fleet incident's agents
 *   (`agent_ids`) on hold. Every replica's view loads unreleased holds with the agents and treats
 *   each held agent as contained from that version on, so the whole set is denied everywhere after
 *   one small commit instead of after every agent's records are written.
 * - `hold_released_version`: the version of the commit that wrote each agent's own contain (actions,
 *   incidents, audit entries, events) and released the hold in the same transaction.
 *
 * Null in both for fleet incidents that were recorded in one commit (narrow, and every incident
 * before this migration).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('fleet_incidents').addColumn('hold_version', 'bigint').addColumn('hold_released_version', 'bigint').execute();
  // The views' question on every poll: which holds are in force (almost always none).
  await sql`create index fleet_incidents_held_idx on fleet_incidents (id) where hold_version is not null and hold_released_version is null`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists fleet_incidents_held_idx`.execute(db);
  await db.schema.alterTable('fleet_incidents').dropColumn('hold_version').dropColumn('hold_released_version').execute();
}
