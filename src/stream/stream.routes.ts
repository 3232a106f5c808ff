import type { Clock } from '../core/clock.js';
import type { Db } from '../db/database.js';
import type { RoutingRules } from '../domain/decide.js';
import type { Router } from '../http/router.js';
import type { Logger } from '../observability/logger.js';
import type { PermissionView } from '../permissions/permission-view.js';

export interface StreamDeps {
  view: PermissionView;
  db: Db;
  clock: Clock;
  logger: Logger;
  routing: RoutingRules;
}

/** `GET /v1/stream` (docs/stream.md). Work in progress: registers nothing yet, so the path answers 404. */
export function addStreamRoutes(_router: Router, _deps: StreamDeps): void {}
