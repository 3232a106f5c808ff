import { sql } from 'kysely';
import type { Redis } from 'ioredis';
import type { Db } from '../../db/database.js';
import { pendingMigrations } from '../../db/migrator.js';
import type { Metrics } from '../../observability/metrics.js';
import type { PermissionView } from '../../permissions/permission-view.js';
import { buildOpenApiDocument } from '../../api/openapi.js';
import type { Router } from '../router.js';

async function check(fn: () => Promise<unknown>, timeoutMs = 2000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return 'ok';
  } catch (err) {
    return (err as Error).message;
  } finally {
    clearTimeout(timer);
  }
}

/** Liveness, readiness, metrics and the API description. No token needed; nothing secret is shown. */
export function addOpsRoutes(
  router: Router,
  deps: {
    db: Db;
    /**
     * Pinged by /readyz. Must be a connection without an offline queue (`enableOfflineQueue: false`):
     * while Redis is away a probe then fails at once (503) instead of piling up pings that wait in
     * memory for a reconnect.
     */
    redis: Pick<Redis, 'ping'>;
    metrics: Metrics;
    view: PermissionView | undefined;
    role: string;
    /** The hash of the policy in force on this replica (it changes on a live reload). */
    policyHash?: () => string;
  },
): void {
  router.add({ method: 'GET', path: '/healthz', auth: false, handler: () => ({ status: 200, body: { status: 'ok' } }) });

  router.add({
    method: 'GET',
    path: '/readyz',
    auth: false,
    handler: async () => {
      const [postgres, redis, migrations] = await Promise.all([
        check(() => sql`select 1`.execute(deps.db)),
        check(() => deps.redis.ping()),
        check(async () => {
          const pending = await pendingMigrations(deps.db);
          if (pending.length) throw new Error(`pending migrations: ${pending.join(', ')} (run npm run migrate)`);
        }),
      ]);
      const checks: Record<string, string> = { postgres, redis, migrations };
      if (deps.view) checks.permissionView = deps.view.isFresh() ? 'ok' : 'stale: cannot confirm permission state is current';
      const ready = Object.values(checks).every((v) => v === 'ok');
      return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'not ready', role: deps.role, ...(deps.policyHash ? { policyHash: deps.policyHash() } : {}), checks } };
    },
  });

  router.add({
    method: 'GET',
    path: '/metrics',
    auth: false,
    handler: async () => ({
      status: 200,
      text: await deps.metrics.registry.metrics(),
      headers: { 'content-type': deps.metrics.registry.contentType },
    }),
  });

  const doc = buildOpenApiDocument();
  router.add({ method: 'GET', path: '/v1/openapi.json', auth: false, handler: () => ({ status: 200, body: doc }) });
}
