import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runPolicyCheck } from '../src/cli/policy-check.js';
import { formatIssuePath, loadPolicyFile, parsePolicyData, parsePolicyText, PolicyError } from '../src/policy/load-policy.js';
import { renderPolicySchemaFile } from '../src/policy/policy-json-schema.js';
import { countDistinctPeople, POLICY_SCHEMA_ID, policyJsonSchema } from '../src/policy/policy.schema.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const examplePath = join(repoRoot, 'policy/armalo-policy.example.yaml');

/** Two roles to build bad policies on: `ciso` (one person) and `oncall` (two people). */
const ROLES = `
roles:
  ciso: { members: [{ email: ciso@example.com, slack: U0CISO }] }
  oncall: { members: [{ slack: U0ONCALL1 }, { slack: U0ONCALL2 }] }
`;

function problemsOf(text: string): string[] {
  try {
    parsePolicyText(text, 'bad.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(PolicyError);
    return (error as PolicyError).problems;
  }
  throw new Error('expected the policy to be rejected');
}

describe('the example policy', () => {
  it('loads, with defaults filled in and durations parsed', () => {
    const policy = loadPolicyFile(examplePath);
    expect(Object.keys(policy.roles)).toEqual(['ciso', 'security-oncall', 'risk-owner', 'procurement']);
    expect(policy.roles['risk-owner']?.members[0]).toEqual({
      email: 'risk@example.com',
      teams: '00000000-0000-0000-0000-000000000001',
    });
    expect(policy.permissions.restore).toEqual({ roles: ['ciso', 'security-oncall'], secondPerson: true, freshEvaluation: true });
    const [payments, risky, stale] = policy.routing;
    expect(payments).toMatchObject({
      id: 'large-payments',
      match: { action: 'payments:*', context: { amountOver: 10000 } },
      approvers: ['risk-owner', 'ciso'],
      addApprovers: [],
      quorum: 2,
      remindAfter: { text: '10m', ms: 600_000 },
      escalateAfter: { text: '30m', ms: 1_800_000 },
      escalateTo: ['security-oncall'],
      expireAfter: { text: '4h', ms: 14_400_000 },
      channel: 'approvals',
    });
    expect(risky).toMatchObject({ match: { riskTier: ['high', 'critical'] }, quorum: 1 });
    expect(stale).toMatchObject({ approvers: [], addApprovers: ['ciso'], match: { evidenceOlderThan: { ms: 30 * 86_400_000 } } });
    expect(policy.consequences.map((rule) => rule.then)).toEqual([
      { narrow: ['*:write'], contain: false },
      { narrow: [], contain: true },
      { narrow: ['payments:*', 'email:send-external'], contain: false },
    ]);
    expect(policy.channels.incidents).toEqual({ slack: 'C0INCIDENTS', teams: '19:incidents@thread.tacv2' });
  });

  it('starts with the yaml-language-server schema line', () => {
    expect(readFileSync(examplePath, 'utf8').split('\n')[0]).toBe('# yaml-language-server: $schema=../schemas/policy.schema.json');
  });
});

describe('defaults and normalization', () => {
  it('an empty mapping is a policy where nobody may do anything', () => {
    expect(parsePolicyText('{}')).toEqual({
      roles: {},
      permissions: { contain: [], narrow: [], revoke: [], restore: { roles: [], secondPerson: false, freshEvaluation: false }, packet: [], breakGlass: { roles: [] }, bulk: { roles: [], confirmAbove: 10 }, subscribe: [] },
      routing: [],
      consequences: [],
      channels: {},
      trust: { tiers: { silver: 500, gold: 750, platinum: 900 }, freshness: { ageingAfterMs: 604_800_000, staleAfterMs: 2_592_000_000 }, weights: {}, scoreMoveOver: 50 },
      mcp: { toolActions: {} },
      workflows: {},
    });
  });

  it('trust settings are checked: tiers in order, ageing before stale', () => {
    expect(() => parsePolicyText('trust:\n  tiers: { silver: 800, gold: 700 }\n')).toThrow(/trust.tiers: expected silver < gold < platinum/);
    expect(() => parsePolicyText('trust:\n  freshness: { ageingAfter: 40d }\n')).toThrow(/trust.freshness: ageingAfter must be shorter than staleAfter/);
    expect(parsePolicyText('trust:\n  tiers: { silver: 300 }\n  scoreMoveOver: 10\n').trust).toMatchObject({ tiers: { silver: 300, gold: 750 }, scoreMoveOver: 10 });
  });

  it('normalizes the restore list form to the object form', () => {
    const policy = parsePolicyText(`${ROLES}permissions:\n  restore: [ciso, oncall]\n`);
    expect(policy.permissions.restore).toEqual({ roles: ['ciso', 'oncall'], secondPerson: false, freshEvaluation: false });
  });

  it('fills in rule ids, quorum and empty lists', () => {
    const policy = parsePolicyText(`${ROLES}routing:\n  - approvers: [oncall]\n  - id: mine\n    addApprovers: [ciso]\nconsequences:\n  - when: { tierBelow: silver }\n    then: { contain: true }\n`);
    expect(policy.routing.map((rule) => [rule.id, rule.quorum, rule.escalateTo, rule.match])).toEqual([
      ['routing[0]', 1, [], {}],
      ['mine', 1, [], {}],
    ]);
    expect(policy.consequences[0]?.id).toBe('consequences[0]');
  });

  it('lower-cases emails and Teams ids', () => {
    const policy = parsePolicyText('roles:\n  a: { members: [{ email: CISO@Example.com, teams: ABCDEF00-0000-0000-0000-000000000001 }] }\n');
    expect(policy.roles.a?.members[0]).toEqual({ email: 'ciso@example.com', teams: 'abcdef00-0000-0000-0000-000000000001' });
  });

  it('accepts already-parsed data', () => {
    expect(parsePolicyData({ roles: { a: { members: [{ slack: 'U1' + 'AB' }] } } }).roles.a?.members).toHaveLength(1);
  });
});

describe('bad policies', () => {
  const cases: { name: string; yaml: string; problem: string }[] = [
    {
      name: 'quorum of zero',
      yaml: `${ROLES}routing:\n  - approvers: [oncall]\n  - approvers: [oncall]\n    quorum: 0\n`,
      problem: 'routing[1].quorum: expected a positive integer',
    },
    {
      name: 'fractional quorum',
      yaml: `${ROLES}routing:\n  - approvers: [oncall]\n    quorum: 1.5\n`,
      problem: 'routing[0].quorum: expected a positive integer',
    },
    {
      name: 'quorum larger than the distinct members',
      yaml: `${ROLES}routing:\n  - approvers: [oncall, ciso]\n    quorum: 4\n`,
      problem: 'routing[0].quorum: quorum 4 is more than the 3 distinct people in roles oncall, ciso',
    },
    {
      name: 'quorum counting one person in two roles once',
      yaml: `roles:\n  a: { members: [{ slack: U0ANNA }] }\n  b: { members: [{ email: anna@example.com, slack: U0ANNA }] }\nrouting:\n  - approvers: [a, b]\n    quorum: 2\n`,
      problem: 'routing[0].quorum: quorum 2 is more than the 1 distinct person in roles a, b',
    },
    {
      name: 'unknown role in permissions',
      yaml: `${ROLES}permissions:\n  contain: [oncall, secops]\n`,
      problem: 'permissions.contain[1]: unknown role "secops"; known roles: ciso, oncall',
    },
    {
      name: 'unknown role in restore (object form)',
      yaml: `${ROLES}permissions:\n  restore: { roles: [cfo] }\n`,
      problem: 'permissions.restore.roles[0]: unknown role "cfo"; known roles: ciso, oncall',
    },
    {
      name: 'unknown role in restore (list form)',
      yaml: `${ROLES}permissions:\n  restore: [ciso, cfo]\n`,
      problem: 'permissions.restore[1]: unknown role "cfo"; known roles: ciso, oncall',
    },
    {
      name: 'unknown role in escalateTo',
      yaml: `${ROLES}routing:\n  - approvers: [oncall]\n    escalateAfter: 30m\n    escalateTo: [boss]\n`,
      problem: 'routing[0].escalateTo[0]: unknown role "boss"; known roles: ciso, oncall',
    },
    {
      name: 'unknown key typo',
      yaml: `${ROLES}routing:\n  - aprovers: [oncall]\n`,
      problem: 'routing[0].aprovers: unknown key (did you mean "approvers"?)',
    },
    {
      name: 'unknown top-level key',
      yaml: `${ROLES}consequence: []\n`,
      problem: 'consequence: unknown key (did you mean "consequences"?)',
    },
    {
      name: 'bad duration',
      yaml: `${ROLES}routing:\n  - approvers: [oncall]\n    remindAfter: 10 minutes\n`,
      problem: 'routing[0].remindAfter: expected a duration such as 90s, 10m, 2h, 30d, 1w or 1h30m (more than 0, at most 365d)',
    },
    {
      name: 'timer that never fires',
      yaml: `${ROLES}routing:\n  - approvers: [oncall]\n    remindAfter: 5h\n    expireAfter: 4h\n`,
      problem: 'routing[0].remindAfter: remindAfter (5h) must be shorter than expireAfter (4h), or it never happens',
    },
    {
      name: 'bad email',
      yaml: 'roles:\n  ciso: { members: [{ email: ciso-at-example.com }] }\n',
      problem: 'roles.ciso.members[0].email: expected an email address',
    },
    {
      name: 'bad Slack user id',
      yaml: 'roles:\n  ciso: { members: [{ slack: "@ciso" }] }\n',
      problem: 'roles.ciso.members[0].slack: expected a Slack user id such as U0123ABCD (U or W, then capital letters and digits)',
    },
    {
      name: 'bad Teams id',
      yaml: 'roles:\n  ciso: { members: [{ teams: ciso@example.com }] }\n',
      problem: 'roles.ciso.members[0].teams: expected a Teams user id: the Azure AD (Entra ID) object id, a GUID such as 00000000-0000-0000-0000-000000000001',
    },
    {
      name: 'member with no identity',
      yaml: 'roles:\n  ciso: { members: [{ email: ciso@example.com }, {}] }\n',
      problem: 'roles.ciso.members[1]: a member needs at least one identity: email, slack or teams',
    },
    {
      name: 'role without members key',
      yaml: 'roles:\n  ciso: {}\n',
      problem: 'roles.ciso.members: required',
    },
    {
      name: 'routing rule without approvers',
      yaml: `${ROLES}routing:\n  - match: { action: "payments:*" }\n    quorum: 1\n`,
      problem: 'routing[0]: a routing rule needs approvers or addApprovers',
    },
    {
      name: 'timer on a rule that only adds approvers',
      yaml: `${ROLES}routing:\n  - addApprovers: [ciso]\n    expireAfter: 1h\n`,
      problem: 'routing[0].expireAfter: expireAfter only applies in a rule with approvers (the rule that sets the route); this rule only adds approvers',
    },
    {
      name: 'unknown channel',
      yaml: `${ROLES}channels:\n  incidents: { slack: C0INC }\nrouting:\n  - approvers: [oncall]\n    channel: approvals\n`,
      problem: 'routing[0].channel: unknown channel "approvals"; known channels: incidents',
    },
    {
      name: 'consequence without an action',
      yaml: 'consequences:\n  - when: { tierBelow: silver }\n    then: {}\n',
      problem: 'consequences[0].then: a consequence needs an action: narrow or contain',
    },
    {
      name: 'consequence with contain: false',
      yaml: 'consequences:\n  - when: { pactViolated: critical }\n    then: { contain: false }\n',
      problem: 'consequences[0].then.contain: expected true (leave contain out to not contain)',
    },
    {
      name: 'wrong kind of value',
      yaml: `${ROLES}permissions:\n  revoke: ciso\n`,
      problem: 'permissions.revoke: expected a list of role names, got "ciso"',
    },
    {
      name: 'secondPerson with a single person',
      yaml: `${ROLES}permissions:\n  restore: { roles: [ciso], secondPerson: true }\n`,
      problem: 'permissions.restore.secondPerson: secondPerson needs at least 2 distinct people in role ciso, found 1',
    },
    {
      name: 'YAML syntax error',
      yaml: 'roles:\n  ciso: { members: [{ slack: U0CISO }]\n permissions: {}\n',
      problem: 'line 3, column 2: ',
    },
    {
      name: 'duplicate key',
      yaml: `${ROLES}routing: []\nrouting: []\n`,
      problem: 'line 6, column 1: Map keys must be unique',
    },
    { name: 'empty file', yaml: '', problem: 'the file is empty' },
    { name: 'file with only comments', yaml: '# nothing yet\n', problem: 'the file is empty' },
    { name: 'a list instead of a mapping', yaml: '- roles\n', problem: '(root): expected a mapping, got a list' },
  ];

  it.each(cases)('$name', ({ yaml, problem }) => {
    const problems = problemsOf(yaml);
    expect(problems.some((line) => line.startsWith(problem)), `problems were:\n${problems.join('\n')}`).toBe(true);
  });

  it('lists every problem at once, one per line, prefixed by the file name', () => {
    const text = `${ROLES}routing:\n  - approvers: [oncall]\n    quorum: 0\n    remindAfter: soon\nchannels:\n  incidents: { slack: "#incidents" }\n`;
    let caught: unknown;
    try {
      parsePolicyText(text, 'policy/prod.yaml');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(PolicyError);
    const error = caught as PolicyError;
    expect(error.source).toBe('policy/prod.yaml');
    expect(error.problems).toHaveLength(3);
    expect(error.message.split('\n')).toEqual(error.problems.map((problem) => `policy/prod.yaml: ${problem}`));
    expect(error.message).toContain('policy/prod.yaml: routing[0].quorum: expected a positive integer');
  });

  it('reports a missing file as a PolicyError', () => {
    expect(() => loadPolicyFile(join(tmpdir(), 'armalo-no-such-policy.yaml'))).toThrow(/cannot read the file: no such file/);
  });
});

describe('helpers', () => {
  it('formats issue paths', () => {
    expect(formatIssuePath(['routing', 1, 'quorum'])).toBe('routing[1].quorum');
    expect(formatIssuePath(['roles', 'ciso', 'members', 0, 'email'])).toBe('roles.ciso.members[0].email');
    expect(formatIssuePath(['roles', 'security-oncall'])).toBe('roles.security-oncall');
    expect(formatIssuePath(['channels', 'my channel'])).toBe('channels["my channel"]');
    expect(formatIssuePath([])).toBe('(root)');
  });

  it('counts people, not entries', () => {
    expect(countDistinctPeople([{ slack: 'U1' }, { slack: 'U1', email: 'a@x.io' }, { email: 'A@x.io', teams: 'T' }, { slack: 'U2' }])).toBe(2);
    expect(countDistinctPeople([])).toBe(0);
  });
});

describe('the published JSON Schema', () => {
  it('is the checked-in schemas/policy.schema.json (regenerate with renderPolicySchemaFile)', () => {
    expect(readFileSync(join(repoRoot, 'schemas/policy.schema.json'), 'utf8')).toBe(renderPolicySchemaFile());
  });

  it('names itself and forbids unknown top-level keys', () => {
    const schema = policyJsonSchema();
    expect(schema).toMatchObject({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $id: POLICY_SCHEMA_ID,
      type: 'object',
      additionalProperties: false,
    });
    expect(typeof schema.title).toBe('string');
    expect(typeof schema.description).toBe('string');
    expect(Object.keys(schema.properties as object)).toEqual(['version', 'roles', 'permissions', 'routing', 'consequences', 'channels', 'trust', 'mcp', 'workflows']);
  });
});

describe('policy:check', () => {
  const runCli = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/policy-check.ts', ...args], {
      cwd: repoRoot,
      encoding: 'utf8',
      // No configuration is needed: run with an empty environment apart from PATH.
      env: { PATH: process.env.PATH ?? '' },
    });

  it('accepts the example with exit 0', () => {
    const result = runCli('policy/armalo-policy.example.yaml');
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('policy/armalo-policy.example.yaml: ok (4 roles, 3 routing rules, 3 consequences)\n');
    expect(result.status).toBe(0);
  });

  it('rejects a bad file with exit 1 and the problems on stderr', () => {
    const dir = mkdtempSync(join(tmpdir(), 'armalo-policy-'));
    try {
      const file = join(dir, 'bad.yaml');
      writeFileSync(file, `${ROLES}routing:\n  - approvers: [oncall]\n  - approvers: [oncall]\n    quorum: -1\n`);
      const result = runCli(file);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(`${file}: routing[1].quorum: expected a positive integer\n`);
      expect(result.status).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints usage and exits 2 without a file', () => {
    const result = runCli();
    expect(result.stderr).toMatch(/^usage: npm run policy:check -- FILE/);
    expect(result.status).toBe(2);
  });

  it('can run in-process too', () => {
    const out: string[] = [];
    const err: string[] = [];
    const output = { out: (line: string) => out.push(line), err: (line: string) => err.push(line) };
    expect(runPolicyCheck([examplePath, join(tmpdir(), 'armalo-no-such-policy.yaml')], output)).toBe(1);
    expect(out).toEqual([`${examplePath}: ok (4 roles, 3 routing rules, 3 consequences)`]);
    expect(err).toEqual([`${join(tmpdir(), 'armalo-no-such-policy.yaml')}: cannot read the file: no such file`]);
    expect(runPolicyCheck(['--verbose'], output)).toBe(2);
    expect(runPolicyCheck(['--help'], output)).toBe(0);
  });
});
