import { sql, type Kysely } from 'kysely';

/**
 * Which approval requests changed since a replica's view last looked (issue 11's follow-up: the
 * views' poll read every open approval each heartbeat, which grew with the number pending).
 *
 * `written_xid` is the id of the transaction that last wrote the row, set by a trigger on every
 * insert and update (so no write path can forget it). A poll asks, in one statement, for the agents
 * whose requests were written by a transaction with an id at or above the previous poll's horizon,
 * and for the new horizon: the oldest transaction still running (`pg_snapshot_xmin`). Every
 * transaction that poll could not see has an id at or above it, whatever order transactions commit
 * in, so nothing is skipped. Rows written before this migration keep null: the first load of a
 * view reads every open request.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table approval_requests add column written_xid xid8`.execute(db);
  await sql`
    create function approval_requests_written() returns trigger language plpgsql as $$
    begin
      new.written_xid := pg_current_xact_id();
      return new;
    end
    $$`.execute(db);
  await sql`create trigger approval_requests_written before insert or update on approval_requests for each row execute function approval_requests_written()`.execute(db);
  await sql`create index approval_requests_written_xid_idx on approval_requests (written_xid)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop trigger if exists approval_requests_written on approval_requests`.execute(db);
  await sql`drop function if exists approval_requests_written()`.execute(db);
  await sql`drop index if exists approval_requests_written_xid_idx`.execute(db);
  await sql`alter table approval_requests drop column if exists written_xid`.execute(db);
}
