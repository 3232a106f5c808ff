import { z } from 'zod';
import type { PacketService } from '../../packets/packets.service.js';
import { packetInputSchema } from '../../api/schemas.js';
import { CodedError, ErrorCode, notFound } from '../../domain/errors.js';
import type { HttpResult, Router } from '../router.js';
import type { TrustPacket } from '../../packets/packet.js';
import { parseInput } from '../validate.js';
import { apiActor } from './agents.routes.js';

const packetIdSchema = z.uuid({ error: 'expected a trust packet id (a UUID)' });
const formatSchema = z.strictObject({ format: z.enum(['json', 'markdown', 'pdf']).default('json') });

/** Renderers are loaded lazily: the PDF and chart libraries are heavy and only these routes need them. */
export interface PacketRenderers {
  markdown(packet: TrustPacket): string;
  pdf(packet: TrustPacket): Promise<Buffer>;
}

export function addPacketRoutes(router: Router, deps: { packets: PacketService; renderers: () => Promise<PacketRenderers> }): void {
  router.add({
    method: 'POST',
    path: '/v1/trust-packets',
    auth: true,
    handler: async (ctx) => {
      const body = parseInput(packetInputSchema, ctx.body, 'trust packet request');
      return { status: 202, body: await deps.packets.request(body, apiActor(ctx.tokenName)) };
    },
  });

  router.add({
    method: 'GET',
    path: '/v1/trust-packets/{id}',
    auth: true,
    handler: async (ctx): Promise<HttpResult> => {
      const id = parseInput(packetIdSchema, ctx.params.id, 'trust packet id');
      const { format } = parseInput(formatSchema, Object.fromEntries(ctx.query), 'query');
      const status = await deps.packets.status(id);
      if (!status) throw notFound(`unknown trust packet ${id}`);
      const packet = await deps.packets.content(id);
      if (format === 'json') return { status: 200, body: { ...status, packet: packet ?? null } };
      if (!packet) throw new CodedError(ErrorCode.Conflict, `trust packet ${id} is ${status.status}; try again when it is ready`);
      const renderers = await deps.renderers();
      if (format === 'markdown') return { status: 200, text: renderers.markdown(packet), headers: { 'content-type': 'text/markdown; charset=utf-8' } };
      return { status: 200, buffer: await renderers.pdf(packet), headers: { 'content-type': 'application/pdf', 'content-disposition': `attachment; filename="trust-packet-${packet.agent.id}-${id.slice(0, 8)}.pdf"` } };
    },
  });

  router.add({
    method: 'GET',
    path: '/v1/trust-packets/{id}/verify',
    auth: true,
    handler: async (ctx) => ({ status: 200, body: await deps.packets.verify(parseInput(packetIdSchema, ctx.params.id, 'trust packet id')) }),
  });
}
