import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect } from 'vitest';
import { runPolicyCheckCli } from '../src/cli/policy-check.js';
import { OTHER_TOKEN, TOKEN, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';

/**
 * `POST /v1/policy/check` and `npm run policy:check -- FILE --against URL`: what a policy file would
 * change against the policy a running service has in force, without applying anything.
 */
const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL }, { email: ana@example.com }] }
  risk-owner: { members: [{ slack: U0RISK }] }
permissions:
  contain: [security-oncall]
  restore: { roles: [security-oncall], secondPerson: true }
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [risk-owner]
`;
const CHANGED = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL }, { slack: U0NEW }] }
  ciso: { members: [{ slack: U0CISO }] }
permissions:
  contain: [security-oncall, ciso]
  restore: { roles: [security-oncall], secondPerson: true }
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 5000 } }
    approvers: [ciso]
  - id: mail
    match: { action: "mail:send" }
    approvers: [ciso]
`;
const PLATFORM_TOKEN = 'tok_scoped_platform_0123456789';

let app: TestApp;
const dir = mkdtempSync(join(tmpdir(), 'armalo-policy-against-'));
const it = appTest({ policy: POLICY, env: { ARMALO_API_TOKENS: `platform:${TOKEN},automation:${OTHER_TOKEN},svc:${PLATFORM_TOKEN}:platform` } });
it.beforeAll(async ({ app: started }) => {
  app = started;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const check = (text: string, token: string | null = TOKEN) =>
  fetch(`${app.url}/v1/policy/check`, { method: 'POST', headers: { 'content-type': 'application/yaml', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: text });

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function cli(args: string[], env: NodeJS.ProcessEnv = { ARMALO_TOKEN: TOKEN }) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runPolicyCheckCli(args, { out: (l) => out.push(l), err: (l) => err.push(l) }, env);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('POST /v1/policy/check', () => {
  it('answers what a file would change against the running policy, and applies nothing', async () => {
    const before = (await app.call('GET', '/readyz')).body.policyHash as string;
    const res = await check(CHANGED);
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body).toMatchObject({ valid: true, runningHash: before, changed: true });
    expect(body.summary).toEqual({
      rolesAdded: ['ciso'],
      rolesRemoved: ['risk-owner'],
      members: { 'security-oncall': { added: ['slack:U0NEW'], removed: ['ana@example.com'] } },
      // `subscribe` defaults to the roles of `contain`, so it changes with it.
      permissions: { contain: { from: ['security-oncall'], to: ['security-oncall', 'ciso'] }, subscribe: { from: ['security-oncall'], to: ['security-oncall', 'ciso'] } },
      routingAdded: ['mail'],
      routingRemoved: [],
      routingChanged: ['big-payments'],
      otherChanged: [],
    });
    // Nothing applied: the same policy is in force.
    expect((await app.call('GET', '/readyz')).body.policyHash).toBe(before);
    expect(app.policyHash()).toBe(before);
  });

  it('a large policy (about 200 KB, thousands of members) is checked; over 1 MB is refused with 413', async () => {
    const members = Array.from({ length: 4000 }, (_, i) => `      - { email: person-${i}@example.com }`).join('\n');
    const large = `roles:\n  security-oncall:\n    members:\n${members}\npermissions:\n  contain: [security-oncall]\n`;
    expect(large.length).toBeGreaterThan(150_000);
    const res = await check(large);
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).summary.members['security-oncall'].added).toHaveLength(4000);
    expect((await check(`# ${'x'.repeat(1024 * 1024)}\n${POLICY}`)).status).toBe(413);
  });

  it('the running policy itself: no change', async () => {
    const body = (await (await check(POLICY)).json()) as any;
    expect(body).toMatchObject({ valid: true, changed: false });
    expect(body.hash).toBe(body.runningHash);
  });

  it('an invalid file answers 400 with every problem; no token 401; a platform token 403', async () => {
    const bad = await check('roles:\n  oncall: { members: [{ slack: U0ONCALL }] }\npermissions:\n  contain: [nobody]\n');
    expect(bad.status).toBe(400);
    const error = ((await bad.json()) as any).error;
    expect(error.code).toBe('invalid_input');
    expect(error.message).toContain('the policy is not valid');
    expect(error.details.join('\n')).toContain('nobody');
    expect((await check('roles: [')).status).toBe(400);
    expect((await check('')).status).toBe(400);
    expect((await check(POLICY, null)).status).toBe(401);
    expect((await check(POLICY, PLATFORM_TOKEN)).status).toBe(403);
  });
});

describe('npm run policy:check -- FILE --against URL', () => {
  it('prints the change summary against the running service', async () => {
    const r = await cli([file('changed.yaml', CHANGED), '--against', app.url]);
    expect(r.err).not.toContain('error');
    expect(r.code).toBe(0);
    expect(r.out).toContain('changed.yaml: ok');
    expect(r.out).toContain('changes against the running policy');
    expect(r.out).toContain('roles added: ciso');
    expect(r.out).toContain('role security-oncall, members removed: ana@example.com');
    expect(r.out).toContain('permissions.contain: ["security-oncall"] -> ["security-oncall","ciso"]');
    expect(r.out).toContain('routing rules changed: big-payments');
    expect(r.out).toContain('routing rules added: mail');
  });

  it('the same policy: no change', async () => {
    const r = await cli([file('same.yaml', POLICY), '--against', `${app.url}/`]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('no change');
  });

  it('an invalid file stops before the service is asked (exit 1); usage and reachability have their own exits', async () => {
    const invalid = await cli([file('bad.yaml', 'roles: {}\npermissions:\n  contain: [ghost]\n'), '--against', app.url]);
    expect(invalid.code).toBe(1);
    expect(invalid.err).toContain('ghost');
    expect((await cli([file('x.yaml', POLICY), '--against'])).code).toBe(2);
    expect((await cli([file('y.yaml', POLICY), '--against', 'ftp://example.invalid'])).code).toBe(2);
    expect((await cli([file('z1.yaml', POLICY), file('z2.yaml', POLICY), '--against', app.url])).code).toBe(2);
    const noToken = await cli([file('t.yaml', POLICY), '--against', app.url], {});
    expect(noToken.code).toBe(3);
    expect(noToken.err).toContain('ARMALO_TOKEN');
    const refused = await cli([file('u.yaml', POLICY), '--against', app.url], { ARMALO_TOKEN: 'tok_wrong_0123456789abcdef' });
    expect(refused.code).toBe(3);
    expect(refused.err).toContain('answered 401');
    // Nothing listens on port 9 (discard) here: the connection is refused.
    const away = await cli([file('v.yaml', POLICY), '--against', 'http://127.0.0.1:9']);
    expect(away.code).toBe(3);
    expect(away.err).toContain('cannot reach');
    expect(readFileSync(join(dir, 'v.yaml'), 'utf8')).toBe(POLICY);
  });
});
