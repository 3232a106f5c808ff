import { Redis, type RedisOptions } from 'ioredis';

/**
 * BullMQ needs `maxRetriesPerRequest: null` on its connections (blocking commands must wait
 * through reconnects rather than fail). Connections never log the URL: it may hold a password.
 */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    // Reconnect quickly but not in a hot loop. The cap bounds how long a replica stays failed
    // closed after Redis is back (its permission-channel ping needs the connection): at 2 s, a
    // restarted Redis took 3 s to allow decisions again (test/faults/redis-restart.fault.ts).
    retryStrategy: (times) => Math.min(100 * times, 500),
    lazyConnect: false,
    ...options,
  });
  // Errors surface through the commands that fail; an unhandled 'error' event would crash us.
  redis.on('error', () => {});
  return redis;
}
