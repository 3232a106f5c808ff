import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadPolicyFile, PolicyError } from '../policy/load-policy.js';
import type { PolicyChangeSummary } from '../policy/policy-diff.js';

/**
 * `npm run policy:check -- FILE [FILE…]`: validates policy files exactly as the service does at start,
 * without any environment variable or service. Exit 0 when every file is valid, 1 when one is not, 2 on
 * wrong usage.
 *
 * `npm run policy:check -- FILE --against URL`: the same, then what the file would change against the
 * policy a running service has in force (`POST /v1/policy/check`, with the admin token in
 * ARMALO_TOKEN). Exit 3 when that comparison could not be made.
 */

const USAGE = `usage: npm run policy:check -- FILE [FILE...]
       npm run policy:check -- FILE --against URL    (admin token in ARMALO_TOKEN)
Checks Armalo policy files (YAML) against the policy schema, as the service does at start. With
--against, also prints what the file would change against the policy in force at URL (nothing is
applied). Exit 0: valid; 1: not valid; 2: wrong usage; 3: the comparison could not be made.
Reference: docs/policy.md. Example: policy/armalo-policy.example.yaml`;

export interface PolicyCheckOutput {
  out: (line: string) => void;
  err: (line: string) => void;
}

const consoleOutput: PolicyCheckOutput = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${count} ${count === 1 ? singular : pluralForm}`;
}

/** Runs the checker on command-line arguments and returns the exit code. */
export function runPolicyCheck(args: readonly string[], output: PolicyCheckOutput = consoleOutput): number {
  if (args.length === 1 && (args[0] === '--help' || args[0] === '-h')) {
    output.out(USAGE);
    return 0;
  }
  const unknownOption = args.find((arg) => arg.startsWith('-'));
  if (args.length === 0 || unknownOption !== undefined) {
    if (unknownOption !== undefined) output.err(`unknown option: ${unknownOption}`);
    output.err(USAGE);
    return 2;
  }

  let exitCode = 0;
  for (const file of args) {
    try {
      const policy = loadPolicyFile(file);
      output.out(
        `${file}: ok (${plural(Object.keys(policy.roles).length, 'role')}, ${plural(policy.routing.length, 'routing rule')}, ${plural(policy.consequences.length, 'consequence')})`,
      );
    } catch (error) {
      exitCode = 1;
      if (error instanceof PolicyError) output.err(error.message);
      else output.err(`${file}: unexpected error: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return exitCode;
}

function isMainModule(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

/** The answer of `POST /v1/policy/check` (its summary: see src/policy/policy-diff.ts). */
interface CheckAnswer {
  hash: string;
  runningHash: string;
  changed: boolean;
  summary: PolicyChangeSummary;
}

/** The summary as lines a person reads in a terminal or a CI log. */
export function summaryLines(answer: CheckAnswer): string[] {
  if (!answer.changed) return [`no change: the service runs this policy (${answer.runningHash.slice(0, 12)})`];
  const s = answer.summary;
  const lines = [`changes against the running policy (${answer.runningHash.slice(0, 12)} -> ${answer.hash.slice(0, 12)}):`];
  const list = (label: string, items: string[]) => {
    if (items.length) lines.push(`  ${label}: ${items.join(', ')}`);
  };
  list('roles added', s.rolesAdded);
  list('roles removed', s.rolesRemoved);
  for (const [role, m] of Object.entries(s.members)) {
    list(`role ${role}, members added`, m.added);
    list(`role ${role}, members removed`, m.removed);
  }
  for (const [key, p] of Object.entries(s.permissions)) lines.push(`  permissions.${key}: ${JSON.stringify(p.from)} -> ${JSON.stringify(p.to)}`);
  list('routing rules added', s.routingAdded);
  list('routing rules removed', s.routingRemoved);
  list('routing rules changed', s.routingChanged);
  list('also changed', s.otherChanged);
  if (lines.length === 1) lines.push('  (only formatting or defaults that do not change what is enforced)');
  return lines;
}

/**
 * The command line, `--against` included: returns the exit code. `env` gives ARMALO_TOKEN; `fetchFn`
 * is the HTTP client (the global fetch).
 */
export async function runPolicyCheckCli(
  args: readonly string[],
  output: PolicyCheckOutput = consoleOutput,
  env: NodeJS.ProcessEnv = process.env,
  fetchFn: typeof fetch = fetch,
): Promise<number> {
  const at = args.indexOf('--against');
  if (at === -1) return runPolicyCheck(args, output);
  const url = args[at + 1];
  const files = args.filter((_, i) => i !== at && i !== at + 1);
  if (url === undefined || url.startsWith('-') || files.length !== 1) {
    output.err('--against takes a URL and exactly one FILE');
    output.err(USAGE);
    return 2;
  }
  let base: URL;
  try {
    base = new URL(url);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    output.err(`--against: not an http(s) URL: ${url}`);
    return 2;
  }
  const local = runPolicyCheck(files, output);
  if (local !== 0) return local;
  const token = env.ARMALO_TOKEN;
  if (!token) {
    output.err('--against needs an admin API token in ARMALO_TOKEN (one of ARMALO_API_TOKENS on the service)');
    return 3;
  }
  const file = files[0]!;
  const endpoint = new URL('v1/policy/check', base.href.endsWith('/') ? base.href : `${base.href}/`);
  let res: Response;
  try {
    res = await fetchFn(endpoint, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/yaml' }, body: readFileSync(file, 'utf8'), signal: AbortSignal.timeout(30_000) });
  } catch (error) {
    output.err(`${file}: cannot reach ${endpoint.origin}: ${error instanceof Error ? error.message : String(error)}`);
    return 3;
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (res.status === 200 && body && typeof body === 'object' && 'summary' in body) {
    for (const line of summaryLines(body as CheckAnswer)) output.out(line);
    return 0;
  }
  const error = (body as { error?: { message?: string; details?: unknown } } | undefined)?.error;
  if (res.status === 400 && Array.isArray(error?.details)) {
    // Valid here, refused there: the service runs another version of the policy schema.
    output.err(`${file}: the service at ${endpoint.origin} refuses this policy: ${error.message ?? ''}`);
    for (const problem of error.details) output.err(`${file}: ${String(problem)}`);
    return 1;
  }
  output.err(`${file}: the service at ${endpoint.origin} answered ${res.status}: ${error?.message ?? text.slice(0, 200)}`);
  return 3;
}

if (isMainModule()) {
  void runPolicyCheckCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
