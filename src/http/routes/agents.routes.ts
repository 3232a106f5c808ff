import type { Db } from '../../db/database.js';
import type { Clock } from '../../core/clock.js';
import { presentAgent, type AgentService } from '../../agents/agents.service.js';
import { loadAgentAsSeen } from '../../fleet/fleet-hold.js';
import { notFound } from '../../domain/errors.js';
import { actionInputSchema, agentIdSchema, agentInputSchema, agentListQuerySchema, decommissionQuerySchema } from '../../api/schemas.js';
import { listAgents } from '../../agents/agent-listing.js';
import { encodeCursor } from '../../core/cursor.js';
import { queryObject } from '../query.js';
import type { ConfirmationService } from '../../confirmations/confirmations.service.js';
import type { Router } from '../router.js';
import { idempotencyKeyHeader, parseInput } from '../validate.js';
import { HttpError } from '../body.js';
import { ErrorCode } from '../../domain/errors.js';
import { IMPORT_MAX_BYTES, importAgents } from '../../agents/agent-import.js';

/** REST actor for API tokens: `api:<token name>`. */
export const apiActor = (tokenName: string | undefined) => `api:${tokenName ?? 'unknown'}`;

export function addAgentRoutes(router: Router, deps: { db: Db; clock: Clock; agents: AgentService; confirmations?: ConfirmationService }): void {
  router.add({
    method: 'POST',
    path: '/v1/agents:import',
    auth: 'admin',
    streamBody: true,
    handler: async (ctx) => {
      const type = String(ctx.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/x-ndjson') {
        throw new HttpError(415, ErrorCode.InvalidInput, 'send the agents as NDJSON with Content-Type: application/x-ndjson (one agent per line: the PUT /v1/agents/{id} body plus "id")');
      }
      const declared = Number(ctx.headers['content-length']);
      if (Number.isFinite(declared) && declared > IMPORT_MAX_BYTES) {
        throw new HttpError(413, ErrorCode.InvalidInput, `the import is larger than ${IMPORT_MAX_BYTES} bytes: split it (each line stands alone)`);
      }
      const result = await importAgents(ctx.req!, { registerMany: (items) => deps.agents.registerMany(items), actor: apiActor(ctx.tokenName) });
      return { status: 200, body: result };
    },
  });

  router.add({
    method: 'PUT',
    path: '/v1/agents/{agentId}',
    auth: 'admin',
    handler: async (ctx) => {
      const id = parseInput(agentIdSchema, ctx.params.agentId, 'agent id');
      const body = parseInput(agentInputSchema, ctx.body, 'agent');
      const { created, agent } = await deps.agents.register(
        {
          id,
          name: body.name,
          owner: body.owner,
          riskTier: body.riskTier,
          grants: body.grants.map((g) => ({
            scope: g.scope,
            constraints: g.constraints ?? {},
            keepInContainment: g.keepInContainment ?? false,
            expiresAt: g.expiresAt ? new Date(g.expiresAt) : null,
          })),
        },
        apiActor(ctx.tokenName),
      );
      return { status: created ? 201 : 200, body: presentAgent(agent, deps.clock.now()) };
    },
  });

  router.add({
    method: 'GET',
    path: '/v1/agents',
    auth: 'platform',
    handler: async (ctx) => {
      const query = parseInput(agentListQuerySchema, queryObject(ctx.query), 'query');
      // An agent token lists its own agent only; admin and platform tokens list every agent.
      const scope = ctx.token?.scope;
      const onlyId = scope?.kind === 'agent' ? scope.agentId : undefined;
      const { agents, nextAfterId } = await listAgents(
        deps.db,
        { status: query.status, owner: query.owner, riskTier: query.riskTier, scope: query.scope, q: query.q, onlyId },
        { limit: query.limit, afterId: query.cursor?.id },
      );
      const now = deps.clock.now();
      return {
        status: 200,
        body: {
          // The shape of GET /v1/agents/{agentId}: score and tier are the latest trust score's.
          items: agents.map((agent) => ({ ...presentAgent(agent, now), score: agent.trustScore ?? null, tier: agent.trustTier ?? null })),
          nextCursor: nextAfterId === null ? null : encodeCursor('agents', { id: nextAfterId }),
        },
      };
    },
  });

  router.add({
    method: 'GET',
    path: '/v1/agents/{agentId}',
    auth: 'platform',
    handler: async (ctx) => {
      const id = parseInput(agentIdSchema, ctx.params.agentId, 'agent id');
      const agent = await loadAgentAsSeen(deps.db, id);
      if (!agent) throw notFound(`unknown agent ${id}`);
      const latest = await deps.db.selectFrom('trust_scores').select(['score', 'tier']).where('agent_id', '=', id).orderBy('computed_at', 'desc').orderBy('id', 'desc').executeTakeFirst();
      return { status: 200, body: { ...presentAgent(agent, deps.clock.now()), score: latest?.score ?? null, tier: latest?.tier ?? null } };
    },
  });

  router.add({
    method: 'POST',
    path: '/v1/agents/{agentId}/actions',
    auth: 'admin',
    handler: async (ctx) => {
      const id = parseInput(agentIdSchema, ctx.params.agentId, 'agent id');
      const body = parseInput(actionInputSchema, ctx.body, 'action');
      // A retry with the same key (per token) answers the first result instead of acting again.
      const key = idempotencyKeyHeader(ctx.headers['idempotency-key']);
      const idempotencyKey = key === undefined || body.dryRun ? undefined : `api:${ctx.tokenName ?? 'unknown'}:${key}`;
      // The policy binds tokens too: a restore follows permissions.restore (fresh evaluation, second person).
      if (body.action === 'restore' && !body.dryRun && deps.confirmations) {
        const outcome = await deps.confirmations.restoreOverApi(id, body.reason, ctx.tokenName ?? 'unknown', apiActor(ctx.tokenName), idempotencyKey);
        if ('awaiting' in outcome) return { status: 202, body: outcome.awaiting };
        return { status: 201, body: outcome.applied };
      }
      const result = await deps.agents.act(
        id,
        { kind: body.action, scopes: body.scopes, reason: body.reason, actor: apiActor(ctx.tokenName), ttlMs: body.ttl },
        { dryRun: body.dryRun ?? false, idempotencyKey },
      );
      return { status: result.dryRun ? 200 : 201, body: result };
    },
  });

  router.add({
    method: 'DELETE',
    path: '/v1/agents/{agentId}',
    auth: 'admin',
    handler: async (ctx) => {
      const id = parseInput(agentIdSchema, ctx.params.agentId, 'agent id');
      const query = parseInput(decommissionQuerySchema, queryObject(ctx.query), 'query');
      const result = await deps.agents.decommission(id, { actor: apiActor(ctx.tokenName), reason: query.reason ?? 'decommissioned over the API' });
      return { status: 200, body: result };
    },
  });
}
