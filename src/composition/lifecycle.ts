import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import type { Config } from '../config/env.js';

/** Raised when the process must not start (unmigrated database, bad policy): the message says why. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/**
 * What must be undone at stop, in reverse order of start. Each step gets a bounded time: a Redis
 * that is gone must not keep the process from stopping.
 */
export class Lifecycle {
  private readonly cleanups: (() => Promise<unknown>)[] = [];

  onStop(cleanup: () => Promise<unknown>): void {
    this.cleanups.push(cleanup);
  }

  /** A connection to Redis, closed at stop. */
  redis(redis: Redis): Redis {
    this.onStop(() => closeRedis(redis));
    return redis;
  }

  async stop(): Promise<void> {
    for (const fn of this.cleanups.splice(0).reverse()) await withTimeout(fn(), 5000).catch(() => undefined);
  }
}

/** Listens on the configured host and port; at stop, closes the server and its open connections. */
export async function listen(server: Server, config: Config, lifecycle: Lifecycle): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  lifecycle.onStop(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return (server.address() as AddressInfo).port;
}

export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function closeRedis(redis: Redis): Promise<void> {
  await withTimeout(redis.quit(), 1000).catch(() => redis.disconnect());
}
