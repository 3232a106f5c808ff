import type { Policy } from '../../policy/policy.schema.js';
import { fleetActionInputSchema } from '../../api/schemas.js';
import { conflict } from '../../domain/errors.js';
import { apiRequester } from '../../confirmations/same-person.js';
import { FLEET_RESTORE_CONFIRM_MS, type FleetCommand, type FleetService } from '../../fleet/fleet.service.js';
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
      if (body.action !== 'restore') return { status: 201, body: await deps.fleet.apply(cmd, { idempotencyKey }) };
      const rule = deps.policy.permissions.restore;
      const preview = await deps.fleet.preview(cmd);
      if (!rule.secondPerson || preview.count === 0) return { status: 201, body: await deps.fleet.restore(cmd) };
      if (!deps.policy.channels.incidents) {
        throw conflict('restore needs a second person (permissions.restore.secondPerson), but the policy names no incidents channel (channels.incidents) to ask in');
      }
      // A token is not a person: any holder of a restore role confirms, once, for the whole set.
      const asked = await deps.fleet.requestConfirmation({
        kind: 'second_person',
        cmd,
        requester: apiRequester(ctx.tokenName ?? 'unknown'),
        agentIds: preview.ids,
        incidentId: preview.incidentId ?? null,
        ttlMs: FLEET_RESTORE_CONFIRM_MS,
      });
      return {
        status: 202,
        body: { status: 'awaiting_confirmation', confirmationId: asked.id, expiresAt: asked.expiresAt, incidentId: preview.incidentId ?? null, count: preview.count, stillHeld: preview.stillHeld ?? [], stillHeldCount: preview.stillHeldCount ?? 0 },
      };
    },
  });
}
