import { ErrorCode } from '../domain/errors.js';
import { HttpError } from './body.js';

/**
 * The query string as an object for a zod schema. A parameter given twice is refused rather than
 * silently reduced to one of its values (`?status=open&status=closed` means nothing we support).
 */
export function queryObject(query: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of query) {
    if (Object.hasOwn(out, key)) throw new HttpError(400, ErrorCode.InvalidInput, `invalid query: ${key.slice(0, 40)}: given more than once`);
    out[key] = value;
  }
  return out;
}
