import { Kysely, PostgresDialect, type Transaction } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;
/** Repositories take either the pool or an open transaction as their first argument. */
export type DbOrTrx = Kysely<Database> | Transaction<Database>;

/** How long an idle pooled connection is kept open. */
export const POOL_IDLE_MS = 60_000;

/**
 * Connections a pool keeps open however long they sit idle (once opened): enough for an action's
 * transaction and the catch-up reads after it, so the first contain after a quiet spell does not
 * pay for new connections (see `createDb`).
 */
export const POOL_KEEP = 4;

/** Each `Db`'s pool (see `poolOf`). */
const pools = new WeakMap<Db, pg.Pool>();

// bigint columns (sequence values) stay strings: JS numbers cannot hold every int8.
export function createDb(databaseUrl: string, options: { max?: number; onConnectionError?: (err: Error) => void } = {}): Db {
  const max = options.max ?? 10;
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max,
    min: Math.min(POOL_KEEP, max),
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
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  pools.set(db, pool);
  return db;
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const UNREACHABLE_MESSAGE = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection terminated unexpectedly)/i;

/**
 * Whether an error means Postgres could not be reached or went away (rather than a query that
 * failed): a refused or reset connection, a connect timeout, a dropped connection, SQLSTATE class
 * 08 (connection exception) or 57P01–57P03 (the server shutting down or not accepting connections).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; message?: unknown; cause?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  if (UNREACHABLE_CODES.has(code) || code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') return true;
  if (typeof e.message === 'string' && UNREACHABLE_MESSAGE.test(e.message)) return true;
  return e.cause !== undefined && e.cause !== err && isDatabaseUnavailable(e.cause);
}

/**
 * Whether a query failed with this Postgres error: a unique violation (of `constraint`, when given)
 * or a deadlock Postgres broke by failing this transaction.
 */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | null;
  return typeof e === 'object' && e !== null && e.code === '23505' && (constraint === undefined || e.constraint === constraint);
}

export function isDeadlock(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '40P01';
}

/** The pg pool behind a `Db` made by `createDb`, for what Kysely cannot run (COPY … TO STDOUT). */
export function poolOf(db: Db): pg.Pool | undefined {
  return pools.get(db);
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
