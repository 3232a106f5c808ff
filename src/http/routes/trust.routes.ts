import type { Db } from '../../db/database.js';
import type { Clock } from '../../core/clock.js';
import type { TrustService } from '../../trust/trust.service.js';
import { agentIdSchema, evaluationInputSchema, inboundEventSchema, pactInputSchema } from '../../api/schemas.js';
import { CodedError, ErrorCode } from '../../domain/errors.js';
import { SIGNATURE_HEADER, verifySignature } from '../../webhooks/signature.js';
import type { InboundEvents } from '../../webhooks/inbound-events.js';
import { HttpError, parseJsonText } from '../body.js';
import type { Router } from '../router.js';
import { parseInput } from '../validate.js';
import { apiActor } from './agents.routes.js';

export function addTrustRoutes(router: Router, deps: { db: Db; clock: Clock; trust: TrustService; webhookSecret: string | undefined; inbound: InboundEvents }): void {
  const { trust } = deps;

  router.add({
    method: 'POST',
    path: '/v1/agents/{agentId}/pacts',
    auth: 'admin',
    handler: async (ctx) => {
      const id = parseInput(agentIdSchema, ctx.params.agentId, 'agent id');
      const pact = parseInput(pactInputSchema, ctx.body, 'pact');
      const { created } = await trust.savePact(id, pact, apiActor(ctx.tokenName));
      return { status: created ? 201 : 200, body: { pacts: await trust.listPacts(id) } };
    },
  });

  router.add({
    method: 'GET',
    path: '/v1/agents/{agentId}/pacts',
    auth: 'admin',
    handler: async (ctx) => ({ status: 200, body: { pacts: await trust.listPacts(parseInput(agentIdSchema, ctx.params.agentId, 'agent id')) } }),
  });

  router.add({
    method: 'POST',
    path: '/v1/agents/{agentId}/evaluations',
    auth: 'admin',
    handler: async (ctx) => {
      const id = parseInput(agentIdSchema, ctx.params.agentId, 'agent id');
      const ev = parseInput(evaluationInputSchema, ctx.body, 'evaluation');
      const { created, score } = await trust.recordEvaluation(id, { ...ev, observedAt: new Date(ev.observedAt) }, apiActor(ctx.tokenName));
      return { status: created ? 201 : 200, body: { created, score } };
    },
  });

  router.add({
    method: 'GET',
    path: '/v1/agents/{agentId}/score',
    auth: 'platform',
    handler: async (ctx) => ({ status: 200, body: await trust.scoreOf(parseInput(agentIdSchema, ctx.params.agentId, 'agent id')) }),
  });

  /**
   * Armalo-style signed events. Order matters: the signature is checked on the exact bytes before
   * anything is parsed; a replayed event id is acknowledged and ignored; dedupe and effect commit
   * together, so a failure leaves the event to be sent again. An event for an agent not registered
   * yet is held (202) and applied when the agent is, so neither it nor its resend is lost.
   */
  router.add({
    method: 'POST',
    path: '/webhooks/armalo',
    auth: false,
    rawBody: true,
    handler: async (ctx) => {
      if (!deps.webhookSecret) throw new CodedError(ErrorCode.Unavailable, 'inbound webhooks are off: ARMALO_WEBHOOK_SECRET is not set');
      const raw = ctx.rawBody ?? '';
      const header = ctx.headers[SIGNATURE_HEADER];
      const check = verifySignature(deps.webhookSecret, raw, Array.isArray(header) ? header[0] : header, Math.floor(deps.clock.now().getTime() / 1000));
      if (!check.ok) throw new HttpError(401, ErrorCode.Unauthorized, `webhook refused: ${check.reason}`);
      const event = parseInput(inboundEventSchema, parseJsonText(raw), 'event');
      const outcome = await deps.inbound.receive(event);
      if (outcome === 'duplicate') return { status: 200, body: { status: 'duplicate', id: event.id, message: 'this event id was already received; nothing changed' } };
      if (outcome === 'held') return { status: 202, body: { status: 'held', id: event.id, message: `unknown agent ${event.data.agentId}: the event is held and will be applied when the agent is registered` } };
      return { status: 200, body: { status: 'applied', id: event.id } };
    },
  });
}
