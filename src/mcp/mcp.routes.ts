import type { ApprovalService } from '../approvals/approvals.service.js';
import type { Clock } from '../core/clock.js';
import type { Db } from '../db/database.js';
import type { DecisionService } from '../decisions/decision.service.js';
import type { Router } from '../http/router.js';
import type { Logger } from '../observability/logger.js';
import type { PermissionView } from '../permissions/permission-view.js';
import type { Policy } from '../policy/policy.schema.js';

export interface McpDeps {
  view: PermissionView;
  decisions: DecisionService;
  approvals: ApprovalService;
  db: Db;
  clock: Clock;
  logger: Logger;
  policy: Policy;
}

/** Streamable HTTP MCP at `/mcp` (DESIGN §5). Work in progress: registers nothing yet, so the path answers 404. */
export function addMcpRoutes(_router: Router, _deps: McpDeps): void {}
