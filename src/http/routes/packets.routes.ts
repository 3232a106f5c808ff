import { z } from 'zod';
import type { PacketService } from '../../packets/packets.service.js';
import { packetInputSchema } from '../../api/schemas.js';
import { CodedError, ErrorCode, notFound } from '../../domain/errors.js';
import type { HttpResult, Router } from '../router.js';
import type { TrustPacket } from '../../packets/packet.js';
import { parseInput } from '../validate.js';
import { apiActor } from './agents.routes.js';
import type { Clock } from '../../core/clock.js';
import { checkPacketLink } from '../../packets/packet-links.js';
import { HttpError } from '../body.js';

const packetIdSchema = z.uuid({ error: 'expected a trust packet id (a UUID)' });
const formatSchema = z.strictObject({ format: z.enum(['json', 'markdown', 'pdf']).default('json') });

/** Renderers are loaded lazily: the PDF and chart libraries are heavy and only these routes need them. */
export interface PacketRenderers {
  markdown(packet: TrustPacket): string;
  pdf(packet: TrustPacket): Promise<Buffer>;
}

export function addPacketRoutes(router: Router, deps: { packets: PacketService; renderers: () => Promise<PacketRenderers>; links?: { secret: string }; clock: Clock }): void {
  // The signed download link Teams cards carry: no API token, a signature and an expiry instead.
  router.add({
    method: 'GET',
    path: '/packets/{file}',
    auth: false,
    handler: async (ctx): Promise<HttpResult> => {
      const id = /^([0-9a-f-]{36})\.pdf$/.exec(ctx.params.file ?? '')?.[1];
      if (!id || !deps.links) throw notFound('no such packet download');
      const check = checkPacketLink(deps.links.secret, id, ctx.query.get('exp'), ctx.query.get('sig'), deps.clock.now());
      if (check === 'bad_signature') throw new CodedError(ErrorCode.Forbidden, 'this download link is not valid');
      if (check === 'expired') throw new HttpError(410, ErrorCode.InvalidInput, 'this download link has expired; ask for the packet again');
      const packet = await deps.packets.content(id);
      if (!packet) throw notFound(`unknown trust packet ${id}`);
      const pdf = await (await deps.renderers()).pdf(packet);
      return { status: 200, buffer: pdf, headers: { 'content-type': 'application/pdf', 'content-disposition': `attachment; filename="trust-packet-${packet.agent.id}.pdf"` } };
    },
  });

  router.add({
    method: 'POST',
    path: '/v1/trust-packets',
    auth: 'admin',
    handler: async (ctx) => {
      const body = parseInput(packetInputSchema, ctx.body, 'trust packet request');
      return { status: 202, body: await deps.packets.request(body, apiActor(ctx.tokenName)) };
    },
  });

  router.add({
    method: 'GET',
    path: '/v1/trust-packets/{id}',
    auth: 'admin',
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
    auth: 'admin',
    handler: async (ctx) => ({ status: 200, body: await deps.packets.verify(parseInput(packetIdSchema, ctx.params.id, 'trust packet id')) }),
  });
}
