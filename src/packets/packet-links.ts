import { createHmac, timingSafeEqual } from 'node:crypto';

/** Download links for trust packets: signed, expiring, usable without an API token (Teams cards). */
export const PACKET_LINK_TTL_MS = 24 * 3600_000;

const sign = (secret: string, packetId: string, exp: number) => createHmac('sha256', secret).update(`packet:${packetId}:${exp}`).digest('hex');

export function packetLink(base: string, secret: string, packetId: string, now: Date, ttlMs = PACKET_LINK_TTL_MS): string {
  const exp = Math.floor((now.getTime() + ttlMs) / 1000);
  return `${base}/packets/${packetId}.pdf?exp=${exp}&sig=${sign(secret, packetId, exp)}`;
}

export type LinkCheck = 'ok' | 'bad_signature' | 'expired';

export function checkPacketLink(secret: string, packetId: string, exp: string | null, sig: string | null, now: Date): LinkCheck {
  const expNum = Number(exp);
  if (!exp || !sig || !Number.isInteger(expNum) || !/^[0-9a-f]{64}$/.test(sig)) return 'bad_signature';
  const expected = Buffer.from(sign(secret, packetId, expNum), 'hex');
  if (!timingSafeEqual(expected, Buffer.from(sig, 'hex'))) return 'bad_signature';
  return expNum * 1000 < now.getTime() ? 'expired' : 'ok';
}
