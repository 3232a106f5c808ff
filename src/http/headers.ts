import type { IncomingMessage } from 'node:http';

/**
 * One request header, read from `req.rawHeaders` without building `req.headers` (Node builds that
 * object lazily, lower-casing and merging every header; the decision path needs three of them).
 *
 * Only for headers Node keeps the first of and drops repeats (`authorization`, `content-type`,
 * `content-length`, …): the first occurrence is what `req.headers` would hold. `lowerName` must be
 * lower case.
 */
export function firstHeader(req: IncomingMessage, lowerName: string): string | undefined {
  const raw = req.rawHeaders;
  const length = lowerName.length;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === length && (name === lowerName || name.toLowerCase() === lowerName)) return raw[i + 1];
  }
  return undefined;
}

/** Whether the request names the header at all (any value, any case). */
export function hasHeader(req: IncomingMessage, lowerName: string): boolean {
  return firstHeader(req, lowerName) !== undefined;
}
