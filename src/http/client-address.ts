import type { IncomingMessage } from 'node:http';

/** Longest address kept (a proxy's entry may carry a port or an IPv6 zone); longer is cut. */
const MAX_ADDRESS = 64;

/**
 * The address of the client behind `hops` proxies we trust (`ARMALO_TRUSTED_PROXY_HOPS`).
 *
 * With no trusted proxy, the socket's peer. Behind `hops` proxies, each appends the address it
 * received from to `X-Forwarded-For`, so the client is the entry `hops` places from the right: the
 * one our outermost proxy wrote. Entries further left were written by the client itself and are
 * never used (anyone can send `X-Forwarded-For: 1.2.3.4`). When the header has fewer entries than
 * `hops` (a request that did not come through every proxy), the leftmost one is used; without the
 * header, the peer.
 */
export function clientAddress(req: IncomingMessage, hops: number): string {
  const peer = req.socket.remoteAddress ?? 'unknown';
  if (hops <= 0) return peer;
  const header = req.headers['x-forwarded-for'];
  const text = Array.isArray(header) ? header.join(',') : header;
  if (!text) return peer;
  const entries = text.split(',').map((e) => e.trim()).filter((e) => e.length > 0);
  if (entries.length === 0) return peer;
  return entries[Math.max(0, entries.length - hops)]!.slice(0, MAX_ADDRESS);
}
