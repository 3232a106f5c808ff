import { sql, type Kysely } from 'kysely';

/**
 * Fleet actions (issue 17, item 3): containment by selector as one incident.
 *
 * - `fleet_incidents`: one row per fleet contain or narrow, naming the selector, the action and the
 *   exact set of agents it acted on (`agent_ids`, resolved inside the action's transaction), open
 *   until a restore by the same selector has lifted every one of its agent actions.
 * - Each agent's action keeps being an ordinary `agent_actions` row (and each agent its own
 *   per-agent incident), linked to the fleet incident by `fleet_incident_id` on both.
 * - `fleet_confirmations`: a fleet action waiting for a click: the requester's own confirmation
 *   above `permissions.bulk.confirmAbove`, or a second person's for a restore under
 *   `restore.secondPerson`. Bound to the agent set resolved when it was asked.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('fleet_incidents')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('action', 'text', (c) => c.notNull().check(sql`action in ('contain','narrow')`))
    .addColumn('selector', 'jsonb', (c) => c.notNull())
    /** The selector in canonical text (`owner:a@b risk:high scope:payments:*`): how a restore finds it. */
    .addColumn('selector_key', 'text', (c) => c.notNull())
    .addColumn('scopes', 'jsonb', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('ttl_ms', 'bigint')
    .addColumn('agent_count', 'integer', (c) => c.notNull())
    .addColumn('agent_ids', 'jsonb', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('open','closed')`))
    .addColumn('opened_at', 'timestamptz', (c) => c.notNull())
    .addColumn('closed_at', 'timestamptz')
    .addColumn('closed_by', 'text')
    .addColumn('idempotency_key', 'text')
    .addColumn('result', 'jsonb')
    .execute();
  await sql`create unique index fleet_incidents_idempotency_uq on fleet_incidents (idempotency_key) where idempotency_key is not null`.execute(db);
  await sql`create index fleet_incidents_open_selector_idx on fleet_incidents (selector_key, opened_at) where status = 'open'`.execute(db);

  await db.schema.alterTable('agent_actions').addColumn('fleet_incident_id', 'uuid').execute();
  await sql`create index agent_actions_fleet_idx on agent_actions (fleet_incident_id) where fleet_incident_id is not null`.execute(db);
  await db.schema.alterTable('incidents').addColumn('fleet_incident_id', 'uuid').execute();

  await db.schema
    .createTable('fleet_confirmations')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    /** `apply`: the requester confirms a large fleet action; `second_person`: someone else confirms a restore. */
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('apply','second_person')`))
    .addColumn('action', 'text', (c) => c.notNull().check(sql`action in ('contain','narrow','restore')`))
    .addColumn('selector', 'jsonb', (c) => c.notNull())
    .addColumn('scopes', 'jsonb', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('ttl_ms', 'bigint')
    /** The fleet incident a restore lifts. */
    .addColumn('fleet_incident_id', 'uuid')
    /** The agent set resolved when it was asked, sorted. */
    .addColumn('agent_ids', 'jsonb', (c) => c.notNull())
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('requested_platform', 'text', (c) => c.notNull())
    .addColumn('requested_user_id', 'text', (c) => c.notNull())
    .addColumn('requested_emails', 'jsonb', (c) => c.notNull())
    .addColumn('requested_person', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('decided_at', 'timestamptz')
    .addColumn('decided_by', 'text')
    .addColumn('outcome', 'text')
    .addColumn('decided_reason', 'text')
    .addColumn('result', 'jsonb')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('fleet_confirmations').execute();
  await db.schema.alterTable('incidents').dropColumn('fleet_incident_id').execute();
  await sql`drop index agent_actions_fleet_idx`.execute(db);
  await db.schema.alterTable('agent_actions').dropColumn('fleet_incident_id').execute();
  await db.schema.dropTable('fleet_incidents').execute();
}
