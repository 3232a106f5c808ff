import type { z } from 'zod';
import { ErrorCode } from '../domain/errors.js';
import { HttpError } from './body.js';

/** Formats a zod issue path the way users read it: `grants[2].constraints.maxAmount`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out;
}

export interface FieldProblem {
  path: string;
  message: string;
}

/** Parses input with a zod schema; a failure is a 400 that lists every problem with its path. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems: FieldProblem[] = result.error.issues.map((issue) => {
    const path = formatPath(issue.path);
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') message = `unknown field${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.join(', ')}`;
    return { path: path || where, message };
  });
  const summary = problems.map((p) => `${p.path}: ${p.message}`).join('; ');
  throw new HttpError(400, ErrorCode.InvalidInput, `invalid ${where}: ${summary}`, problems);
}

/**
 * The `Idempotency-Key` header of a request that changes state: absent, or 1 to 200 visible ASCII
 * characters (anything else is a 400, not silently ignored: a client that sent a key relies on it).
 */
export function idempotencyKeyHeader(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[\x21-\x7e]{1,200}$/.test(value)) {
    throw new HttpError(400, ErrorCode.InvalidInput, 'the Idempotency-Key header must be 1 to 200 visible ASCII characters (sent once)');
  }
  return value;
}
