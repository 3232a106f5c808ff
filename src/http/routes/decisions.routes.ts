import type { Clock } from '../../core/clock.js';
import { decide, type Decision } from '../../domain/decide.js';
import type { ApprovalService } from '../../approvals/approvals.service.js';
import type { Metrics } from '../../observability/metrics.js';
import type { LimitedLog } from '../../observability/logger.js';
import { isCodedError } from '../../domain/errors.js';
import type { PermissionView } from '../../permissions/permission-view.js';
import { decisionInputSchema } from '../../api/schemas.js';
import { ACTION_PATTERN } from '../../domain/scope.js';
import { assertAgentInScope } from '../auth.js';
import type { Router } from '../router.js';
import { parseInput } from '../validate.js';

type DecisionInput = { agentId: string; action: string; context: Record<string, unknown> };

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Accepts only bodies that `decisionInputSchema` certainly accepts, without zod's cost on the hot
 * path; anything else (including every invalid body) goes through zod, which words the 400.
 */
export function quickDecisionInput(body: unknown): DecisionInput | undefined {
  if (!isPlainObject(body)) return undefined;
  for (const key in body) if (key !== 'agentId' && key !== 'action' && key !== 'context') return undefined;
  const { agentId, action, context } = body;
  if (typeof agentId !== 'string' || agentId.length < 1 || agentId.length > 256) return undefined;
  if (typeof action !== 'string' || action.length > 200 || !ACTION_PATTERN.test(action)) return undefined;
  if (context === undefined) return { agentId, action, context: {} };
  if (!isPlainObject(context)) return undefined;
  for (const key in context) if (key.length > 100) return undefined;
  if ('amount' in context) {
    const amount = context.amount;
    if (typeof amount !== 'number' || !Number.isFinite(amount) || amount < 0) return undefined;
  }
  if ('currency' in context && typeof context.currency !== 'string') return undefined;
  if ('recipientDomain' in context && typeof context.recipientDomain !== 'string') return undefined;
  return { agentId, action, context };
}

/** The hot path: answered from this replica's in-memory view, never from Postgres. */
export function addDecisionRoutes(router: Router, deps: { view: PermissionView; clock: Clock; metrics: Metrics; approvals?: ApprovalService; limitedLog?: LimitedLog }): void {
  const answer = (decision: Decision, agentStatus: string | null, approvalRequestId?: string) => {
    deps.metrics.decisions.inc({ decision: decision.decision });
    return {
      status: 200,
      body: {
        decision: decision.decision,
        reasons: decision.reasons.map((r) => r.message),
        reasonCodes: decision.reasons.map((r) => r.code),
        ...(approvalRequestId ? { approvalRequestId } : {}),
        agentStatus,
        ...(decision.grantId ? { grantId: decision.grantId } : {}),
        viewVersion: deps.view.version.toString(),
      },
    };
  };
  router.add({
    method: 'POST',
    path: '/v1/decisions',
    auth: 'platform',
    handler: (ctx) => {
      let body = quickDecisionInput(ctx.body);
      if (!body) {
        const parsed = parseInput(decisionInputSchema, ctx.body, 'decision request');
        body = { agentId: parsed.agentId, action: parsed.action, context: parsed.context ?? {} };
      }
      assertAgentInScope(ctx.token, body.agentId);
      const agent = deps.view.get(body.agentId);
      const result = decide(agent, body, deps.clock.now(), deps.view.isFresh());
      const status = agent?.status ?? null;
      // Allowed by the grants, but a routing rule may put it under approval: then only an approval
      // for exactly this action (and at most its amount) allows it. Without routing rules the
      // answer stays synchronous and in memory.
      if (result.decision !== 'allow' || !agent || !deps.approvals?.hasRouting) return answer(result, status);
      const approvals = deps.approvals;
      const input = body;
      const routedAnswer = async () => {
        const rule = await approvals.ruleRequiring(agent, input.action, input.context);
        if (!rule) return answer(result, status);
        const used = await approvals.useApproval(agent.id, input.action, input.context);
        if (used) {
          return answer({ ...result, reasons: [...result.reasons, { code: 'approved', message: `approved by request ${used} (rule ${rule.id})` }] }, status, used);
        }
        const pending = await approvals.pendingFor(agent.id, input.action, input.context);
        return answer(
          {
            decision: 'approval_required',
            reasons: [
              {
                code: 'approval_required',
                message: `${input.action} needs approval under routing rule ${rule.id} (${rule.why.join(', ')})${pending ? `; request ${pending} is pending` : '; create one with POST /v1/approval-requests'}`,
              },
            ],
          },
          status,
          pending,
        );
      };
      return (async () => {
        try {
          return await routedAnswer();
        } catch (err) {
          // Routing needs Postgres (rules over evidence, approvals to use). If it cannot be asked,
          // fail closed with a decision, never a 500: the caller must not proceed.
          if (isCodedError(err)) throw err;
          deps.limitedLog?.('warn', 'decision-routing-unavailable', { err: (err as Error).message }, 'cannot check approval routing; denying');
          return answer({ decision: 'deny', reasons: [{ code: 'view_stale', message: 'cannot check approval routing right now; failing closed' }] }, status);
        }
      })();
    },
  });
}
