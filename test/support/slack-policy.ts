import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A policy for the Slack tests: on-call responders, a CISO, a risk owner known only by email. */
export const SLACK_TEST_POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }, { slack: U0ONCALL2 }] }
  ciso: { members: [{ slack: U0CISO, email: ciso@example.com }] }
  risk-owner: { members: [{ email: risk@example.com }] }
permissions:
  contain: [security-oncall, ciso, risk-owner]
  narrow: [security-oncall, ciso]
  revoke: [ciso]
  restore: { roles: [security-oncall, ciso], secondPerson: true }
channels:
  incidents: { slack: C0INCIDENTS }
`;

/** Removes a policy file written by `writePolicy`, with its temp directory. */
export function removePolicy(file: string): void {
  rmSync(dirname(file), { recursive: true, force: true });
}

/** Writes the policy into a temp directory of its own; `removePolicy` removes it. */
export function writePolicy(text = SLACK_TEST_POLICY): string {
  const dir = mkdtempSync(join(tmpdir(), 'armalo-policy-'));
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, text);
  return file;
}
