import type { Redis } from 'ioredis';
import type { Config } from '../config/env.js';
import { createDb, type Db } from '../db/database.js';
import { pendingMigrations } from '../db/migrator.js';
import type { LimitedLog } from '../observability/logger.js';
import { createRedis } from '../queue/connection.js';
import { closeQueues, createQueues, type Queues } from '../queue/queues.js';
import { StartupError, withTimeout, type Lifecycle } from './lifecycle.js';

export interface Connections {
  db: Db;
  /** The blocking connection BullMQ workers use. */
  redis: Redis;
  /** Fail-fast producer: queues, permission-change publishes, readiness pings. */
  producer: Redis;
  queues: Queues;
}

/** Postgres (migrated) and Redis, reachable, or a StartupError that says which is not. */
export async function openConnections(config: Config, lifecycle: Lifecycle, limitedLog: LimitedLog): Promise<Connections> {
  // Repeated errors while Postgres or Redis is away: a few lines a minute, not one per attempt.
  const db = createDb(config.databaseUrl, {
    onConnectionError: (err) => limitedLog('warn', 'postgres-connection', { err: err.message }, 'a Postgres connection was lost; the work on it failed and the pool reconnects'),
  });
  lifecycle.onStop(() => db.destroy());
  const pending = await pendingMigrations(db).catch((err: Error) => {
    throw new StartupError(`cannot reach Postgres: ${err.message}`);
  });
  if (pending.length) throw new StartupError(`the database is not migrated (pending: ${pending.join(', ')}); run \`npm run migrate\` first`);

  const redis = lifecycle.redis(createRedis(config.redisUrl));
  await withTimeout(redis.ping(), 5000).catch((err: Error) => {
    throw new StartupError(`cannot reach Redis: ${err.message}`);
  });
  // Producers fail fast while Redis is away (the outbox keeps the rows and retries) instead of
  // queueing commands in memory inside an open database transaction.
  // The permission-change publish after a commit goes on this connection too: with Redis away it
  // fails at once (bounded in publishPermissionChange) instead of holding the HTTP answer or the
  // Slack ack; the change is committed and other replicas catch up by their version poll.
  const producer = lifecycle.redis(createRedis(config.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 }));
  if (producer.status !== 'ready') {
    // Not events.once: a transient 'error' while connecting must not fail the start.
    await withTimeout(new Promise<void>((resolve) => producer.once('ready', () => resolve())), 5000).catch((err: Error) => {
      throw new StartupError(`cannot reach Redis: ${err.message}`);
    });
  }
  const queues = createQueues(producer, config.queuePrefix, (queue, err) => {
    limitedLog('warn', `queue-error:${queue}`, { queue, err: err.message }, 'queue connection error');
  });
  lifecycle.onStop(() => closeQueues(queues));
  return { db, redis, producer, queues };
}
