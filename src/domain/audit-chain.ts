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

/**
 * The hashed text of an entry whose seq is not known yet, in two parts around the seq's digits:
 * `auditEntryHash(prev, entry)` is the SHA-256 of `prev + "\n" + before + seq + after`. The
 * append splices the seq in under the head lock, in the same statement that takes it. The seq
 * is a decimal string, so its JSON is `"<digits>"` and nothing in it needs escaping.
 */
export function auditEntryHashParts(entry: Omit<AuditEntryContent, 'seq'>): { before: string; after: string } {
  const marker = '\u0000seq\u0000';
  const text = canonicalJson({
    seq: marker,
    at: entry.at.toISOString(),
    actor: entry.actor,
    action: entry.action,
    subject: entry.subject,
    payload: entry.payload,
  });
  // The marker's JSON (with its escapes) occurs once: in the seq field, which sorts after payload.
  const quoted = JSON.stringify(marker).slice(1, -1);
  const at = text.lastIndexOf(quoted);
  return { before: text.slice(0, at), after: text.slice(at + quoted.length) };
}
