import type { IncomingMessage } from 'node:http';
import { CodedError, ErrorCode } from '../domain/errors.js';

export const MAX_BODY_BYTES = 64 * 1024;

export class HttpError extends CodedError {
  constructor(
    readonly status: number,
    code: ErrorCode,
    message: string,
    details?: unknown,
  ) {
    super(code, message, details);
  }
}

/** Reads the raw body up to `limit` bytes; a larger body is refused without reading the rest. */
export async function readRawBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    throw new HttpError(413, ErrorCode.InvalidInput, `request body is larger than ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, ErrorCode.InvalidInput, `request body is larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function containsNul(value: unknown, depth = 0): boolean {
  if (depth > 64) return true;
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some((v) => containsNul(v, depth + 1));
  if (value && typeof value === 'object') {
    return Object.entries(value).some(([k, v]) => k.includes('\u0000') || containsNul(v, depth + 1));
  }
  return false;
}

/** Parses a JSON request body. Postgres cannot store NUL characters in text, so they are refused here. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new HttpError(415, ErrorCode.InvalidInput, 'send the body as JSON with Content-Type: application/json');
  }
  const raw = await readRawBody(req);
  if (raw.trim() === '') throw new HttpError(400, ErrorCode.InvalidInput, 'request body is empty; expected a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new HttpError(400, ErrorCode.InvalidInput, `request body is not valid JSON: ${(err as Error).message}`);
  }
  if (containsNul(value)) {
    throw new HttpError(400, ErrorCode.InvalidInput, 'request body contains NUL characters or is nested more than 64 levels deep');
  }
  return value;
}
