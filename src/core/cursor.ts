/**
 * Opaque page cursors for the listing endpoints and chat listings. A cursor is the position of the
 * last item of a page (its sort key), base64url-encoded JSON tagged with the listing it belongs to.
 * It grants nothing: every filter and every token scope is applied again on the next page, so a
 * forged cursor can only move the starting point of a listing the caller may read anyway.
 */

export type CursorKind = 'agents' | 'incidents' | 'approvals' | 'sessions';

/** Where the next page starts: after `id` (agents), or after `(at, id)` in newest-first order. */
export interface CursorPosition {
  id: string;
  /** Exact timestamp text (microseconds, UTC) for time-ordered listings. */
  at?: string;
}

const TAG: Record<CursorKind, string> = { agents: 'a', incidents: 'i', approvals: 'r', sessions: 's' };
/** Longest cursor we accept: far above what we produce (ids are at most 128 characters). */
export const MAX_CURSOR_LENGTH = 600;
const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

export function encodeCursor(kind: CursorKind, position: CursorPosition): string {
  const body: Record<string, string> = { k: TAG[kind], id: position.id };
  if (position.at !== undefined) body.at = position.at;
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

/** The position a cursor holds, or a sentence saying why it is not a cursor of this listing. */
export function decodeCursor(kind: CursorKind, cursor: string): { ok: true; position: CursorPosition } | { ok: false; error: string } {
  const bad = { ok: false as const, error: `not a cursor of this listing: pass the nextCursor of a previous ${kind} page unchanged` };
  if (cursor.length === 0 || cursor.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]+$/.test(cursor)) return bad;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    return bad;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return bad;
  const { k, id, at, ...rest } = parsed as Record<string, unknown>;
  if (k !== TAG[kind] || Object.keys(rest).length > 0 || typeof id !== 'string' || !ID.test(id)) return bad;
  const timed = kind !== 'agents';
  if (timed !== (at !== undefined)) return bad;
  if (at !== undefined && (typeof at !== 'string' || !AT.test(at) || Number.isNaN(Date.parse(at)))) return bad;
  return { ok: true, position: at === undefined ? { id } : { id, at: at as string } };
}
