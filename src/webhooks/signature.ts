import { createHmac, timingSafeEqual } from 'node:crypto';

/** Header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, inbound and outbound. */
export const SIGNATURE_HEADER = 'x-armalo-signature';
export const DEFAULT_TOLERANCE_SECONDS = 5 * 60;

export function signPayload(secret: string, rawBody: string, timestampSeconds: number): string {
  const v1 = createHmac('sha256', secret).update(`${timestampSeconds}.${rawBody}`).digest('hex');
  return `t=${timestampSeconds},v1=${v1}`;
}

export type SignatureCheck = { ok: true; timestamp: number } | { ok: false; reason: string };

/** Verifies a signature header against the raw body; one verifier serves inbound and outbound. */
export function verifySignature(
  secret: string,
  rawBody: string,
  header: string | undefined,
  nowSeconds: number,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): SignatureCheck {
  if (!header) return { ok: false, reason: 'missing signature header' };
  const parts = new Map<string, string[]>();
  for (const piece of header.split(',')) {
    const i = piece.indexOf('=');
    if (i <= 0) return { ok: false, reason: 'malformed signature header' };
    const key = piece.slice(0, i).trim();
    parts.set(key, [...(parts.get(key) ?? []), piece.slice(i + 1).trim()]);
  }
  const t = Number(parts.get('t')?.[0]);
  if (!Number.isInteger(t)) return { ok: false, reason: 'signature header has no valid timestamp' };
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return { ok: false, reason: 'signature timestamp outside the allowed window' };
  const expected = Buffer.from(createHmac('sha256', secret).update(`${t}.${rawBody}`).digest('hex'), 'utf8');
  // Several v1 values are allowed so a sender can sign with an old and a new secret while rotating.
  const match = (parts.get('v1') ?? []).some((candidate) => {
    const got = Buffer.from(candidate, 'utf8');
    return got.length === expected.length && timingSafeEqual(got, expected);
  });
  return match ? { ok: true, timestamp: t } : { ok: false, reason: 'signature does not match' };
}
