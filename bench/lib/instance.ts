/**
 * How the decisions and memory parts run an instance the way a deployment does: `ARMALO_ROLE=all`,
 * the example policy in policy/ (routing rules, trust settings), Slack and Teams both configured
 * against local fakes. Only the restore rule differs from the example (see benchPolicyYaml).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { ROOT, appEnv } from './children.js';
import { buildCompiled } from './compiled-instance.js';

export const EXAMPLE_POLICY = path.join(ROOT, 'policy', 'armalo-policy.example.yaml');

/**
 * The example policy with one change: `permissions.restore` keeps its roles but turns
 * `secondPerson` and `freshEvaluation` off, so a contain/restore cycle in the bench is let through
 * at once (the example asks a second person to confirm, and waits for a fresh evaluation).
 */
export function benchPolicyYaml(): string {
  const doc = parseDocument(readFileSync(EXAMPLE_POLICY, 'utf8'));
  doc.setIn(['permissions', 'restore', 'secondPerson'], false);
  doc.setIn(['permissions', 'restore', 'freshEvaluation'], false);
  return doc.toString();
}

export function writeBenchPolicy(dir: string): string {
  const file = path.join(dir, 'bench-policy.yaml');
  writeFileSync(file, benchPolicyYaml());
  return file;
}

export const BENCH_POLICY_NOTE = 'policy: policy/armalo-policy.example.yaml with only permissions.restore.secondPerson and .freshEvaluation turned off';

/**
 * The environment of one instance: role all, Slack (signing secret, bot token, Web API at the fake)
 * and Teams (app id and password; its OpenID metadata at the fake, which it reads only when an
 * activity arrives) configured.
 */
export function configuredInstanceEnv(o: { databaseUrl: string; redisUrl: string; host: string; queuePrefix: string; apiToken: string; policyFile: string; fakeUrl: string }, role: 'all' | 'web' = 'all'): Record<string, string> {
  return appEnv(o, role, {
    ARMALO_POLICY_FILE: o.policyFile,
    SLACK_SIGNING_SECRET: randomBytes(16).toString('hex'),
    SLACK_BOT_TOKEN: `xoxb-bench-${randomBytes(8).toString('hex')}`,
    SLACK_API_URL: `${o.fakeUrl}/api/`,
    TEAMS_APP_ID: '00000000-0000-0000-0000-00000000b0b0',
    TEAMS_APP_PASSWORD: randomBytes(16).toString('hex'),
    TEAMS_OPENID_METADATA_URL: `${o.fakeUrl}/teams/openid-configuration`,
  });
}

export const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);

/**
 * The node flags every instance runs with, the same as `npm start` and the Docker image: 8 MB
 * semi-spaces (V8 grows them to 16 MB under allocation pressure; 2 MB, shipped before, promoted so
 * many short-lived request objects that the old generation grew by about 50 MB under load).
 */
export const DEFAULT_NODE_FLAGS = ['--max-semi-space-size=8'];
/** BENCH_NODE_FLAGS (space-separated, may be empty) replaces them, to compare settings. */
export const INSTANCE_NODE_FLAGS = process.env.BENCH_NODE_FLAGS === undefined ? DEFAULT_NODE_FLAGS : process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean);

/**
 * How the decisions and memory parts run an instance: by default the JavaScript `buildCompiled`
 * makes, with plain `node --enable-source-maps` as `npm start` and the image run it. BENCH_TSX=1
 * runs them under tsx instead (as these parts did until 3 December 2026), to compare: tsx's loader
 * thread and per-module state cost about 35 MB of RSS, none of which a deployment pays.
 */
export const INSTANCES_UNDER_TSX = process.env.BENCH_TSX === '1';
export const INSTANCE_RUNTIME = INSTANCES_UNDER_TSX ? 'under tsx (BENCH_TSX=1)' : 'compiled, as npm start runs it';

/** Builds what the instances run (the compiled app, unless BENCH_TSX=1); call before starting one. */
export async function prepareInstances(): Promise<{ compiled: boolean }> {
  if (INSTANCES_UNDER_TSX) return { compiled: false };
  await buildCompiled();
  return { compiled: true };
}
