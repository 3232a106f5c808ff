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

/** Told when a body read ends: its text, or why it could not be read. */
export interface BodySink {
  bodyArrived(text: string): void;
  bodyFailed(err: HttpError): void;
}

/** One body being read: kept on the request under a symbol, so the listeners are shared functions, not closures per request. */
interface BodyRead {
  first: Buffer | undefined;
  more: Buffer[] | undefined;
  size: number;
  limit: number;
  sink: BodySink;
}

const BODY_READ = Symbol('bodyRead');
type ReadingRequest = IncomingMessage & { [BODY_READ]?: BodyRead };

const tooLarge = (limit: number) => new HttpError(413, ErrorCode.InvalidInput, `request body is larger than ${limit} bytes`);

function onBodyData(this: ReadingRequest, chunk: Buffer): void {
  const read = this[BODY_READ];
  if (!read) return;
  read.size += chunk.length;
  if (read.size > read.limit) {
    this.off('data', onBodyData);
    this[BODY_READ] = undefined;
    // Stop reading; the answer goes out and the connection is closed after it.
    this.pause();
    read.sink.bodyFailed(tooLarge(read.limit));
    return;
  }
  if (read.first === undefined) read.first = chunk;
  else (read.more ??= [read.first]).push(chunk);
}

function onBodyEnd(this: ReadingRequest): void {
  const read = this[BODY_READ];
  if (!read) return;
  this[BODY_READ] = undefined;
  read.sink.bodyArrived(read.more ? Buffer.concat(read.more).toString('utf8') : read.first ? read.first.toString('utf8') : '');
}

function onBodyError(this: ReadingRequest): void {
  const read = this[BODY_READ];
  if (!read) return;
  this[BODY_READ] = undefined;
  read.sink.bodyFailed(new HttpError(400, ErrorCode.InvalidInput, 'the request body could not be read (connection aborted)'));
}

/**
 * Reads the raw body up to `limit` bytes and tells `sink` (no promise: the server's hot path);
 * throws at once (nothing read) when the declared length is over the limit; a larger body than
 * declared is refused without reading the rest. Plain 'data'/'end' listeners shared by every
 * request: the state of a read lives on the request.
 */
export function readBodyInto(req: IncomingMessage, sink: BodySink, limit = MAX_BODY_BYTES): void {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  (req as ReadingRequest)[BODY_READ] = { first: undefined, more: undefined, size: 0, limit, sink };
  req.on('data', onBodyData);
  req.on('end', onBodyEnd);
  req.on('error', onBodyError);
}

/** `readBodyInto` as a promise: the raw body up to `limit` bytes. */
export function readRawBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<string> {
  return new Promise((resolve, reject) => readBodyInto(req, { bodyArrived: resolve, bodyFailed: reject }, limit));
}

// A lone UTF-16 surrogate (`"\ud800"` is valid JSON) cannot be stored in Postgres' jsonb.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function badText(s: string): string | undefined {
  if (s.includes('\u0000')) return 'contains a NUL character';
  if (LONE_SURROGATE.test(s)) return 'contains a lone UTF-16 surrogate (not valid Unicode text)';
  return undefined;
}

function openingBrackets(raw: string): number {
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) n++;
  }
  return n;
}

/** The first problem with a parsed body's strings or nesting, if any. */
function findBadValue(value: unknown, depth = 0): string | undefined {
  if (depth > 64) return 'is nested more than 64 levels deep';
  if (typeof value === 'string') return badText(value);
  if (Array.isArray(value)) {
    for (const v of value) {
      const problem = findBadValue(v, depth + 1);
      if (problem) return problem;
    }
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      // zod drops an own __proto__ key from a record (a decision's context) without a word: refuse it.
      const problem = (k === '__proto__' ? 'has an unknown field: __proto__ (never allowed, at any depth)' : badText(k)) ?? findBadValue(v, depth + 1);
      if (problem) return problem;
    }
  }
  return undefined;
}

/** Throws 415 unless the request says its body is JSON. */
export function assertJsonBody(req: IncomingMessage): void {
  const header = req.headers['content-type'];
  // The common exact header skips the parse of parameters and case.
  const type = header === 'application/json' ? header : String(header ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new HttpError(415, ErrorCode.InvalidInput, 'send the body as JSON with Content-Type: application/json');
}

/** Parses JSON text from a request, with the same checks as every JSON body. */
export function parseJsonText(raw: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    // Empty or blank text is never valid JSON: it is told apart only once parsing failed.
    if (raw.trim() === '') throw new HttpError(400, ErrorCode.InvalidInput, 'request body is empty; expected a JSON object');
    throw new HttpError(400, ErrorCode.InvalidInput, `request body is not valid JSON: ${(err as Error).message}`);
  }
  // NUL and lone surrogates can only arrive as \u escapes (raw bytes are invalid JSON or decode to
  // U+FFFD), so bodies without a \u escape skip the walk: the common case on the hot path.
  // Likewise nesting deeper than 64 needs more than 64 opening brackets and as many closing ones.
  const problem = raw.includes('\\u') || raw.includes('__proto__') || (raw.length > 129 && openingBrackets(raw) > 64) ? findBadValue(value) : undefined;
  if (problem) throw new HttpError(400, ErrorCode.InvalidInput, `request body ${problem}`);
  return value;
}
