import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { policySchema, type Policy } from './policy.schema.js';

/**
 * Reading a policy file: YAML → plain data → {@link policySchema}. Every way a file can be wrong ends in
 * one {@link PolicyError} that lists every problem as `<path>: <message>`, e.g.
 * `routing[1].quorum: expected a positive integer`, so a person can fix the whole file in one pass.
 */

/** A policy file that cannot be used. `problems` are `<path>: <message>` lines, without the file name. */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';

  constructor(
    /** The file name (or other label) the problems are about. */
    readonly source: string,
    readonly problems: string[],
  ) {
    super(problems.map((problem) => `${source}: ${problem}`).join('\n'));
  }
}

const DEFAULT_SOURCE = '<policy>';

/** Parses and validates policy YAML. `source` names the text in error messages (usually the file path). */
export function parsePolicyText(text: string, source: string = DEFAULT_SOURCE): Policy {
  const body = text.replace(/^\uFEFF/, '');
  if (body.trim() === '') throw new PolicyError(source, ['the file is empty; a policy is a YAML mapping (see policy/armalo-policy.example.yaml)']);

  const lineCounter = new LineCounter();
  // uniqueKeys: a repeated key would otherwise let the second silently replace the first.
  const document = parseDocument(body, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new PolicyError(
      source,
      document.errors.map((error) => {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        return `line ${line}, column ${col}: ${firstLine(error.message)}`;
      }),
    );
  }
  if (document.contents === null) {
    throw new PolicyError(source, ['the file is empty (only comments); a policy is a YAML mapping (see policy/armalo-policy.example.yaml)']);
  }

  let data: unknown;
  try {
    // A low alias limit stops "billion laughs" expansion; a policy has no reason for many aliases.
    data = document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw new PolicyError(source, [`cannot read the YAML: ${firstLine(error instanceof Error ? error.message : String(error))}`]);
  }
  return parsePolicyData(data, source);
}

/** Reads a policy file (synchronously: it happens once, at start or in the checker). */
export function loadPolicyFile(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = error instanceof Error && 'code' in error && error.code === 'ENOENT' ? 'no such file' : error instanceof Error ? error.message : String(error);
    throw new PolicyError(path, [`cannot read the file: ${reason}`]);
  }
  return parsePolicyText(text, path);
}

/** Validates already-parsed policy data (for example from JSON); same errors as {@link parsePolicyText}. */
export function parsePolicyData(data: unknown, source: string = DEFAULT_SOURCE): Policy {
  const proto = protoKeyPath(data);
  if (proto) throw new PolicyError(source, [`${formatIssuePath([...proto, '__proto__'])}: unknown key (a key named __proto__ is never allowed)`]);
  const result = policySchema.safeParse(data, { error: fallbackMessage, reportInput: true });
  if (result.success) return result.data;
  throw new PolicyError(source, formatPolicyIssues(result.error.issues));
}

/**
 * Where the data holds an own `__proto__` key (YAML and JSON.parse make one), if anywhere. zod drops
 * such a key from a record (roles, channels) without a word; in a security policy it must be an error.
 */
function protoKeyPath(value: unknown, path: PropertyKey[] = []): PropertyKey[] | undefined {
  if (value === null || typeof value !== 'object' || path.length > 64) return undefined;
  if (!Array.isArray(value) && Object.hasOwn(value, '__proto__')) return path;
  for (const [key, inner] of Object.entries(value)) {
    const found = protoKeyPath(inner, [...path, Array.isArray(value) ? Number(key) : key]);
    if (found) return found;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Turning zod issues into `<path>: <message>` lines

/**
 * `routing[1].quorum`, `roles.ciso.members[0].email`, `channels["my channel"]`; `(root)` for the top.
 */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(String(segment))}]`;
  }
  return text === '' ? '(root)' : text;
}

/** One line per problem; unions report the branch that came closest, unknown keys one line per key. */
export function formatPolicyIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return collect(issues, []).map(({ path, message }) => `${formatIssuePath(path)}: ${message}`);
}

interface Problem {
  path: PropertyKey[];
  message: string;
}

function collect(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[]): Problem[] {
  return issues.flatMap((issue): Problem[] => {
    const path = [...prefix, ...issue.path];
    switch (issue.code) {
      case 'unrecognized_keys': {
        // policy.schema.ts writes one message line per unknown key, in the order of `keys`.
        const lines = issue.message.split('\n');
        return issue.keys.map((key, index) => ({
          path: [...path, key],
          message: lines.length === issue.keys.length ? (lines[index] ?? 'unknown key') : 'unknown key',
        }));
      }
      case 'invalid_union': {
        // A branch whose only problem is "wrong type at the top" did not apply; any other branch was
        // the shape the author meant, so its problems are the useful ones.
        const meant = issue.errors.find((branch) => branch.some((inner) => inner.code !== 'invalid_type' || inner.path.length > 0));
        return meant ? collect(meant, path) : [{ path, message: withInput(issue.message, issue.input) }];
      }
      case 'invalid_key':
        // A bad record key (e.g. a role name with a space): the path already ends with the key.
        return issue.issues.map((inner) => ({ path, message: inner.message }));
      case 'invalid_type':
        return [{ path, message: issue.input === undefined ? 'required' : withInput(issue.message, issue.input) }];
      default:
        return [{ path, message: issue.message }];
    }
  });
}

/** Appends what was found to an "expected …" message: `expected a list of role names, got "ciso"`. */
function withInput(message: string, input: unknown): string {
  return message.startsWith('expected') && !message.includes(', got ') ? `${message}, got ${describeValue(input)}` : message;
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  return String(value);
}

const EXPECTED_WORDING: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'text',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

/** Wording for issues that the schema does not word itself (mostly "wrong kind of value"). */
const fallbackMessage: z.core.$ZodErrorMap = (issue) => {
  if (issue.code === 'invalid_type') return `expected ${EXPECTED_WORDING[issue.expected] ?? issue.expected}`;
  return undefined;
};

function firstLine(text: string): string {
  return text.split('\n', 1)[0]?.trim() ?? text;
}
