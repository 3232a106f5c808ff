import type { ApprovalService } from '../../approvals/approvals.service.js';
import { CodedError, ErrorCode, notFound } from '../../domain/errors.js';
import { approvalIdSchema, approvalListQuerySchema, approvalRequestInputSchema, approvalWaitQuerySchema } from '../../api/schemas.js';
import { listApprovals } from '../../approvals/approvals-list.repository.js';
import { encodeCursor } from '../../core/cursor.js';
import type { Db } from '../../db/database.js';
import { queryObject } from '../query.js';
import { assertAgentInScope, assertRecordInScope } from '../auth.js';
import { checkCallbackTarget } from '../../net/callback-guard.js';
import type { Router } from '../router.js';
import { parseInput } from '../validate.js';
import { apiActor } from './agents.routes.js';

export function addApprovalRoutes(router: Router, deps: { approvals: ApprovalService; callbacksSigned: boolean; callbackHosts?: readonly string[]; db: Db }): void {
  router.add({
    method: 'GET',
    path: '/v1/approval-requests',
    auth: 'platform',
    handler: async (ctx) => {
      const query = parseInput(approvalListQuerySchema, queryObject(ctx.query), 'query');
      // An agent token lists its own agent's requests only (asking for another agent's is a 403).
      if (query.agentId !== undefined) assertAgentInScope(ctx.token, query.agentId);
      const scope = ctx.token?.scope;
      const agentId = scope?.kind === 'agent' ? scope.agentId : query.agentId;
      const after = query.cursor?.at !== undefined ? { at: query.cursor.at, id: query.cursor.id } : undefined;
      const page = await listApprovals(deps.db, { status: query.status, agentId, approver: query.approver }, { limit: query.limit, after });
      return { status: 200, body: { items: page.items, nextCursor: page.nextAfter ? encodeCursor('approvals', page.nextAfter) : null } };
    },
  });

  router.add({
    method: 'POST',
    path: '/v1/approval-requests',
    auth: 'platform',
    handler: async (ctx) => {
      const body = parseInput(approvalRequestInputSchema, ctx.body, 'approval request');
      assertAgentInScope(ctx.token, body.agentId);
      if (body.callbackUrl && !deps.callbacksSigned) {
        throw new CodedError(ErrorCode.InvalidInput, 'callbackUrl needs ARMALO_EVENTS_WEBHOOK_SECRET on the server (callbacks are always signed)');
      }
      // The server makes requests to this URL: public addresses only (after DNS), or the operator's
      // allow-list. Checked again at every delivery (src/net/callback-guard.ts).
      if (body.callbackUrl) {
        const checked = await checkCallbackTarget(body.callbackUrl, deps.callbackHosts ?? []);
        if (!checked.ok) throw new CodedError(ErrorCode.InvalidInput, `callbackUrl refused: ${checked.reason}`);
      }
      const { created, request } = await deps.approvals.create({ ...body, context: body.context ?? {} }, apiActor(ctx.tokenName));
      return { status: created ? 201 : 200, body: request };
    },
  });

  router.add({
    method: 'GET',
    path: '/v1/approval-requests/{id}',
    auth: 'platform',
    handler: async (ctx) => {
      const id = parseInput(approvalIdSchema, ctx.params.id, 'approval request id');
      const { wait } = parseInput(approvalWaitQuerySchema, Object.fromEntries(ctx.query), 'query');
      await assertRecordInScope(ctx.token, async () => (await deps.approvals.get(id))?.agentId, () => notFound(`unknown approval request ${id}`));
      const view = wait ? await deps.approvals.waitFor(id, wait) : await deps.approvals.get(id);
      if (!view) throw notFound(`unknown approval request ${id}`);
      return { status: 200, body: view };
    },
  });

  router.add({
    method: 'POST',
    path: '/v1/approval-requests/{id}/cancel',
    auth: 'platform',
    bodyOptional: true,
    handler: async (ctx) => {
      const id = parseInput(approvalIdSchema, ctx.params.id, 'approval request id');
      await assertRecordInScope(ctx.token, async () => (await deps.approvals.get(id))?.agentId, () => notFound(`unknown approval request ${id}`));
      return { status: 200, body: await deps.approvals.cancel(id, apiActor(ctx.tokenName)) };
    },
  });
}
