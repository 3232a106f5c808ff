import { sql, type Kysely } from 'kysely';
import type { Database } from '../../src/db/schema.js';
import { waitFor } from './app.js';

/**
 * Race tests hold a row as a writer in flight would (a contain holding its agent, an approver's click
 * holding a request), send the other side, and only go on once it is waiting for that row.
 */

/** Runs `fn` on one connection inside a transaction it commits itself; rolled back if `fn` throws. */
export async function inTransaction(db: Kysely<Database>, fn: (connection: Kysely<Database>) => Promise<void>): Promise<void> {
  await db.connection().execute(async (connection) => {
    await sql`begin`.execute(connection);
    try {
      await fn(connection);
    } catch (err) {
      await sql`rollback`.execute(connection).catch(() => undefined);
      throw err;
    }
  });
}

/** Waits until some session of this database waits for a lock. */
export function waitForLockWait(db: Kysely<Database>, what: string): Promise<void> {
  return waitFor(
    async () => (await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`.execute(db)).rows[0]!.n > 0,
    10_000,
    what,
  );
}
