import { createHash } from 'node:crypto';

/** The chain starts from a hash of zeros. */
export const GENESIS_HASH = '0'.repeat(64);

export interface AuditEntryContent {
  seq: string;
  at: Date;
  actor: string;
  action: string;
  subject: string;
  payload: unknown;
}

/**
 * JSON with object keys sorted at every level, so the same content always hashes the same,
 * whatever order Postgres' jsonb hands the keys back in.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** Each entry's hash covers the previous entry's hash and all of its own content. */
export function auditEntryHash(prevHash: string, entry: AuditEntryContent): string {
  return createHash('sha256')
    .update(prevHash)
    .update('\n')
    .update(
      canonicalJson({
        seq: entry.seq,
        at: entry.at.toISOString(),
        actor: entry.actor,
        action: entry.action,
        subject: entry.subject,
        payload: entry.payload,
      }),
    )
    .digest('hex');
}
