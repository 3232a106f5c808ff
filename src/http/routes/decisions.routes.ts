import type { Clock } from '../../core/clock.js';
import { decide } from '../../domain/decide.js';
import type { Metrics } from '../../observability/metrics.js';
import type { PermissionView } from '../../permissions/permission-view.js';
import { decisionInputSchema } from '../../api/schemas.js';
import type { Router } from '../router.js';
import { parseInput } from '../validate.js';

/** The hot path: answered from this replica's in-memory view, never from Postgres. */
export function addDecisionRoutes(router: Router, deps: { view: PermissionView; clock: Clock; metrics: Metrics }): void {
  router.add({
    method: 'POST',
    path: '/v1/decisions',
    auth: true,
    handler: (ctx) => {
      const body = parseInput(decisionInputSchema, ctx.body, 'decision request');
      const agent = deps.view.get(body.agentId);
      const result = decide(agent, { agentId: body.agentId, action: body.action, context: body.context ?? {} }, deps.clock.now(), deps.view.isFresh());
      deps.metrics.decisions.inc({ decision: result.decision });
      return {
        status: 200,
        body: {
          decision: result.decision,
          reasons: result.reasons.map((r) => r.message),
          reasonCodes: result.reasons.map((r) => r.code),
          agentStatus: agent?.status ?? null,
          ...(result.grantId ? { grantId: result.grantId } : {}),
          viewVersion: deps.view.version.toString(),
        },
      };
    },
  });
}
