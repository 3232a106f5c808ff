import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { sql } from 'kysely';
import { createDb, ensureDatabaseExists, type Db } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrator.js';

export const PG_BASE = process.env.TEST_DATABASE_BASE_URL ?? 'postgres://postgres@127.0.0.1:5432';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh database per test file, created and (unless told otherwise) migrated to latest. */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `armalo_test_${randomBytes(6).toString('hex')}`;
  const url = `${PG_BASE}/${name}`;
  await ensureDatabaseExists(url);
  if (options.migrate !== false) {
    const db = createDb(url, { max: 1 });
    const { error } = await migrateToLatest(db);
    await db.destroy();
    if (error) throw error;
  }
  return {
    url,
    name,
    drop: async () => {
      const admin = new pg.Client({ connectionString: `${PG_BASE}/postgres` });
      await admin.connect();
      try {
        await admin.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** A unique BullMQ/Redis prefix per test file, so files never see each other's jobs. */
export function testPrefix(): string {
  return `armalo-test-${randomBytes(5).toString('hex')}`;
}

/**
 * Runs a statement as a superuser bypassing the append-only triggers (session_replication_role =
 * replica): how tests tamper with the audit log, so that the hash chains are what must catch it.
 */
export async function asSuperuser(db: Db, statement: ReturnType<typeof sql>): Promise<void> {
  await db.connection().execute(async (conn) => {
    await sql`set session_replication_role = replica`.execute(conn);
    try {
      await statement.execute(conn);
    } finally {
      await sql`set session_replication_role = origin`.execute(conn);
    }
  });
}
