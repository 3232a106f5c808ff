import { cleanRedisPrefix } from '../../test/support/app.js';

/** Deletes every Redis key under a bench run's prefix (queues, the permission channel's keys); returns how many. */
export const deleteRedisPrefix = (redisUrl: string, prefix: string): Promise<number> => cleanRedisPrefix(prefix, redisUrl);
