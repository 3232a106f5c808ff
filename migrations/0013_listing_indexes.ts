import { sql, type Kysely } from 'kysely';

/**
 * Indexes for the listings (GET /v1/agents, /v1/incidents, /v1/approval-requests): each filter they
 * offer, in the order they page in, so a page costs an index range scan whatever the fleet's size.
 * (`q`, a substring of id or name, still scans: a trigram index would need an extension.)
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index agents_status_list_idx on agents (status, id)`.execute(db);
  await sql`create index agents_owner_list_idx on agents (lower(owner), id)`.execute(db);
  await sql`create index incidents_list_idx on incidents (opened_at desc, id desc)`.execute(db);
  await sql`create index incidents_agent_list_idx on incidents (agent_id, opened_at desc, id desc)`.execute(db);
  await sql`create index incidents_status_list_idx on incidents (status, opened_at desc, id desc)`.execute(db);
  await sql`create index approval_requests_list_idx on approval_requests (created_at desc, id desc)`.execute(db);
  await sql`create index approval_requests_agent_list_idx on approval_requests (agent_id, created_at desc, id desc)`.execute(db);
  await sql`create index approval_requests_status_list_idx on approval_requests (status, created_at desc, id desc)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const name of [
    'agents_status_list_idx',
    'agents_owner_list_idx',
    'incidents_list_idx',
    'incidents_agent_list_idx',
    'incidents_status_list_idx',
    'approval_requests_list_idx',
    'approval_requests_agent_list_idx',
    'approval_requests_status_list_idx',
  ]) {
    await sql`drop index if exists ${sql.id(name)}`.execute(db);
  }
}
