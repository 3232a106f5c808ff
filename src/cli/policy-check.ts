import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadPolicyFile, PolicyError } from '../policy/load-policy.js';

/**
 * `npm run policy:check -- FILE [FILE…]`: validates policy files exactly as the service does at start,
 * without any environment variable or service. Exit 0 when every file is valid, 1 when one is not, 2 on
 * wrong usage.
 */

const USAGE = `usage: npm run policy:check -- FILE [FILE...]
Checks Armalo policy files (YAML) against the policy schema, as the service does at start.
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

if (isMainModule()) {
  process.exitCode = runPolicyCheck(process.argv.slice(2));
}
