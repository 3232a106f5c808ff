import { decisionAnswerJson, type DecisionAnswer, type DecisionService } from '../../decisions/decision.service.js';
import type { DecisionRequest } from '../../domain/decide.js';
import type { PermissionView } from '../../permissions/permission-view.js';
import { decisionInputSchema, VERSION_PATTERN } from '../../api/schemas.js';
import { ACTION_PATTERN } from '../../domain/scope.js';
import { assertAgentInScope } from '../auth.js';
import type { Router } from '../router.js';
import { parseInput } from '../validate.js';

type DecisionInput = { agentId: string; action: string; context: Record<string, unknown>; atLeastVersion?: string };

/** How long a decision with `atLeastVersion` waits for this replica's view to reach it (DESIGN §5). */
export const AT_LEAST_VERSION_WAIT_MS = 250;

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Accepts only bodies that `decisionInputSchema` certainly accepts, without zod's cost on the hot
 * path; anything else (including every invalid body) goes through zod, which words the 400.
 */
export function quickDecisionInput(body: unknown): DecisionInput | undefined {
  if (!isPlainObject(body)) return undefined;
  for (const key in body) if (key !== 'agentId' && key !== 'action' && key !== 'context' && key !== 'atLeastVersion') return undefined;
  const { agentId, action, context, atLeastVersion } = body;
  if (typeof agentId !== 'string' || agentId.length < 1 || agentId.length > 256) return undefined;
  if (typeof action !== 'string' || action.length > 200 || !ACTION_PATTERN.test(action)) return undefined;
  if (atLeastVersion !== undefined && (typeof atLeastVersion !== 'string' || !VERSION_PATTERN.test(atLeastVersion))) return undefined;
  if (context === undefined) return atLeastVersion === undefined ? { agentId, action, context: NO_CONTEXT } : { agentId, action, context: NO_CONTEXT, atLeastVersion };
  if (!isPlainObject(context)) return undefined;
  for (const key in context) if (key.length > 100) return undefined;
  if ('amount' in context) {
    const amount = context.amount;
    if (typeof amount !== 'number' || !Number.isFinite(amount) || amount < 0) return undefined;
  }
  if ('currency' in context && typeof context.currency !== 'string') return undefined;
  if ('recipientDomain' in context && typeof context.recipientDomain !== 'string') return undefined;
  return atLeastVersion === undefined ? { agentId, action, context } : { agentId, action, context, atLeastVersion };
}

/** The context of a request that sent none: shared, so frozen (nothing on the decision path writes to a context). */
const NO_CONTEXT: Record<string, unknown> = Object.freeze({});

/**
 * The hot path, mapped to HTTP only: the `DecisionService` owns the answer (from this replica's
 * in-memory view) and never throws; only a bad body (400) or a token out of scope (403) is refused here.
 */
export function addDecisionRoutes(router: Router, deps: { view: PermissionView; decisions: DecisionService }): void {
  const toHttp = (answer: DecisionAnswer) => ({ status: 200, json: decisionAnswerJson(answer, deps.view.version) });
  const viewBehind = (agentId: string, wanted: bigint): DecisionAnswer =>
    deps.decisions.deny(
      agentId,
      'view_behind',
      `this replica's view is at version ${deps.view.version}, older than the requested ${wanted} after ${AT_LEAST_VERSION_WAIT_MS} ms; failing closed: retry shortly`,
    );
  router.add({
    method: 'POST',
    path: '/v1/decisions',
    auth: 'platform',
    handler: (ctx) => {
      let body = quickDecisionInput(ctx.body);
      if (!body) {
        const parsed = parseInput(decisionInputSchema, ctx.body, 'decision request');
        body = { agentId: parsed.agentId, action: parsed.action, context: parsed.context ?? {}, ...(parsed.atLeastVersion === undefined ? {} : { atLeastVersion: parsed.atLeastVersion }) };
      }
      assertAgentInScope(ctx.token, body.agentId);
      // The input is the request (its extra `atLeastVersion` is not read by the decision).
      const request: DecisionRequest = body;
      // Fresh on demand: a caller holding a version (from an action it just took) is answered only
      // from a view that already holds it. This replica waits for its view to get there (a push or
      // poll settles the wait); if it does not in time, it fails closed rather than answer from older state.
      const wanted = body.atLeastVersion === undefined ? undefined : BigInt(body.atLeastVersion);
      if (wanted !== undefined && deps.view.version < wanted) {
        return deps.view.waitForVersion(wanted, AT_LEAST_VERSION_WAIT_MS).then((reached) => {
          if (!reached) return toHttp(viewBehind(request.agentId, wanted));
          const answer = deps.decisions.decide(request);
          return answer instanceof Promise ? answer.then(toHttp) : toHttp(answer);
        });
      }
      const answer = deps.decisions.decide(request);
      return answer instanceof Promise ? answer.then(toHttp) : toHttp(answer);
    },
  });
}
