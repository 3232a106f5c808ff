import type { Policy } from '../../policy/policy.schema.js';
import { fleetActionInputSchema } from '../../api/schemas.js';
import { apiRequester } from '../../confirmations/same-person.js';
import { type FleetCommand, type FleetService } from '../../fleet/fleet.service.js';
import type { Router } from '../router.js';
import { idempotencyKeyHeader, parseInput } from '../validate.js';
import { apiActor } from './agents.routes.js';

/**
 * `POST /v1/actions`: contain, narrow or restore every agent a selector matches, as one fleet
 * incident (admin tokens). The policy's `permissions.bulk` binds people in chat; an admin token acts
 * directly at any count (there is no confirmation step over REST). The restore rule binds tokens as
 * it does for one agent: under `restore.secondPerson` a restore waits for a person (202).
 */
export function addFleetRoutes(router: Router, deps: { fleet: FleetService; policy: Policy }): void {
  router.add({
    method: 'POST',
    path: '/v1/actions',
    auth: 'admin',
    handler: async (ctx) => {
      const body = parseInput(fleetActionInputSchema, ctx.body, 'fleet action');
      const idempotencyKey = body.idempotencyKey ?? idempotencyKeyHeader(ctx.headers['idempotency-key']);
      const cmd: FleetCommand = { action: body.action, selector: body.selector, scopes: body.scopes, reason: body.reason, actor: apiActor(ctx.tokenName), ttlMs: body.ttl };
      if (body.dryRun) {
        const { ids: _ids, ...preview } = await deps.fleet.preview(cmd);
        return { status: 200, body: preview };
      }
      // Retries are scoped per token, as single actions' are: another token's key (or a chat action's) never answers this one.
      const scoped = idempotencyKey === undefined ? undefined : `api:${ctx.tokenName ?? 'unknown'}:${idempotencyKey}`;
      if (body.action !== 'restore') return { status: 201, body: await deps.fleet.apply(cmd, { idempotencyKey: scoped }) };
      const answerKey = scoped === undefined ? undefined : `fleet-restore:${scoped}`;
      return deps.fleet.restoreOverApi(cmd, apiRequester(ctx.tokenName ?? 'unknown'), { answerKey, incidentsChannel: Boolean(deps.policy.channels.incidents) });
    },
  });
}
