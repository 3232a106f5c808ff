import { Kysely, PostgresDialect, type Transaction } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;
/** Repositories take either the pool or an open transaction as their first argument. */
export type DbOrTrx = Kysely<Database> | Transaction<Database>;

/** How long an idle pooled connection is kept open. */
export const POOL_IDLE_MS = 60_000;

// bigint columns (sequence values) stay strings: JS numbers cannot hold every int8.
export function createDb(databaseUrl: string, options: { max?: number; onConnectionError?: (err: Error) => void } = {}): Db {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.max ?? 10,
    connectionTimeoutMillis: 5000,
    // Keep connections a burst opened for a minute (pg's default closes them after 10 s). A new
    // connection costs a backend start and cold catalog caches, tens of ms on a busy machine, and
    // that lands in the latency of the next contain and of every replica's catch-up after it.
    idleTimeoutMillis: POOL_IDLE_MS,
    // Lets the OS notice a peer that vanished without closing the connection (a failover, a
    // dropped route), so a query waiting on it fails instead of waiting for ever.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // Postgres reports application_name in pg_stat_activity: useful to tell our replicas apart.
    application_name: 'armalo-chatops',
  });
  // An idle client that loses its connection emits 'error' on the pool; without a listener that
  // would crash the process. The next query gets a fresh connection. (Reported once, below.)
  const onError = options.onConnectionError ?? (() => {});
  pool.on('error', () => {});
  // A client that loses its connection while checked out (a query or transaction in flight) emits
  // 'error' on the client itself, where the pool listens only while it is idle: without this
  // listener one dropped connection kills the process. The query in flight fails with the same
  // error, and the pool discards a client that is no longer queryable when it is released, so a
  // broken connection is never handed out again.
  pool.on('connect', (client) => {
    client.on('error', (err) => onError(err));
    flushAfterAsyncCommit(client);
  });
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * Statements that take the audit chain's head lock (appending an entry, drawing a permission
 * version) carry this call: it turns `synchronous_commit` off for their transaction only.
 *
 * Why: the head lock is held until the transaction ends, and with a synchronous commit that
 * includes the WAL flush (an fsync: about 10 ms on a busy machine), so every audited change in
 * the whole deployment queued behind one fsync at a time (about 80 changes/s, whatever the
 * number of clients). With an asynchronous commit the lock is released as soon as the commit
 * record is in the WAL buffers, and the next writer can chain onto it at once.
 *
 * Durability is kept by the connection wrapper below: the COMMIT of such a transaction resolves
 * only after a second, synchronous commit on the same connection has flushed the WAL past it (a
 * flush covers every record before it). So no caller, and no user, is ever answered before its
 * change is on disk; and the flushes of concurrent writers are grouped by Postgres (one fsync
 * serves all the commits waiting for it). What changes: a change is visible to other sessions
 * a few ms before it is durable. Anything that commits after reading it (the next audit entry
 * chained onto it, the next version) lies later in the WAL, so a crash can only lose a suffix:
 * the chain that survives is still one unbroken chain.
 */
export const ASYNC_COMMIT_SQL = "set_config('synchronous_commit', 'off', true)";

/**
 * The statement that makes an asynchronous commit durable: a transactional WAL record in an
 * implicit transaction of its own, whose synchronous commit flushes the WAL up to it (a
 * transaction that writes no WAL, such as `select pg_current_xact_id()`, is not flushed).
 */
const FLUSH_SQL = "select pg_logical_emit_message(true, 'armalo-flush', '')";

type QueryFn = (...args: unknown[]) => unknown;

/** Wraps one pooled client: a COMMIT after `ASYNC_COMMIT_SQL` resolves only once it is durable. */
function flushAfterAsyncCommit(client: pg.PoolClient): void {
  const original = client.query.bind(client) as QueryFn;
  let asyncCommit = false;
  const wrapped: QueryFn = (...args) => {
    const text = args[0];
    // Only the promise form with SQL text (how Kysely calls it); callbacks and cursors pass through.
    if (typeof text !== 'string' || typeof args[args.length - 1] === 'function') return original(...args);
    if (text === 'commit' && asyncCommit) {
      asyncCommit = false;
      return (original(...args) as Promise<unknown>).then(async (result) => {
        await (original(FLUSH_SQL) as Promise<unknown>);
        return result;
      });
    }
    if (text === 'rollback' || text === 'commit') asyncCommit = false;
    else if (text.includes(ASYNC_COMMIT_SQL)) asyncCommit = true;
    return original(...args);
  };
  (client as unknown as { query: QueryFn }).query = wrapped;
}

/** Creates the database named in the URL if it does not exist (used by `npm run migrate`). */
export async function ensureDatabaseExists(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name) throw new Error('DATABASE_URL names no database');
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (found.rowCount) return false;
    // Identifiers cannot be bound as parameters; quote it the way Postgres does.
    await client.query(`create database "${name.replace(/"/g, '""')}"`);
    return true;
  } finally {
    await client.end();
  }
}
