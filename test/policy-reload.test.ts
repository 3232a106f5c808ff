import { renameSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect } from 'vitest';
import { sampleAgent, TOKEN, waitFor, type TestApp } from './support/app.js';
import { REDIS_URL } from './support/database.js';
import { appTest } from './support/fixture.js';
import { approvalClick, decisionOf, slashCommand } from './support/drive.js';
import { Redis } from 'ioredis';
import type { FakeSlack } from './support/fake-slack.js';
import { blockActionBody, postSigned } from './support/slack-requests.js';
import { parsePolicyText } from '../src/policy/load-policy.js';
import { derivedFrom, PolicyHolder, policyHash } from '../src/policy/policy-holder.js';
import { summarizePolicyChange } from '../src/policy/policy-diff.js';
import { createArmaloClient, type ArmaloClient } from '../sdk/src/index.js';

/** The policy under test: who is on call, who approves big payments, and from which amount. */
function policyText(o: { oncall: string[]; risk: string[]; amountOver: number }): string {
  return `
roles:
  security-oncall: { members: [${o.oncall.map((s) => `{ slack: ${s} }`).join(', ')}] }
  ciso: { members: [{ slack: U0CISO }] }
  risk-owner: { members: [${o.risk.map((s) => `{ slack: ${s} }`).join(', ')}] }
  platform: { members: [{ slack: U0OWNER, email: owner@example.com }] }
permissions:
  contain: [security-oncall, ciso]
  narrow: [security-oncall, ciso]
  revoke: [ciso]
  restore: { roles: [security-oncall, ciso], secondPerson: true }
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: ${o.amountOver} } }
    approvers: [risk-owner, ciso]
    quorum: 2
channels:
  incidents: { slack: C0INCIDENTS }
`;
}

const START = { oncall: ['U0ONCALL1'], risk: ['U0RISK', 'U0RISK2'], amountOver: 10_000 };
const hashOf = (text: string) => policyHash(parsePolicyText(text));

let a: TestApp;
let b: TestApp;
let file: string;
let sdk: ArmaloClient | undefined;
let slack: FakeSlack;
let prefix: string;
let n = 0;

/** Replaces the file by rename, as editors and Kubernetes config maps do. */
function rewrite(text: string): void {
  writeFileSync(`${file}.next`, text);
  renameSync(`${file}.next`, file);
}

async function readyHash(app: TestApp): Promise<string> {
  return (await app.call('GET', '/readyz', undefined, { token: null })).body.policyHash as string;
}

const command = async (app: TestApp, user: string, text: string): Promise<string> => JSON.stringify((await slashCommand(app, slack, user, text)).body);
const approveClick = async (app: TestApp, user: string, requestId: string): Promise<string> => JSON.stringify(await approvalClick(app, slack, user, requestId));

const decision = async (app: TestApp, agentId: string, amount: number) => (await decisionOf(app, agentId, 'payments:transfer', { amount })).decision;

async function policyAudits(): Promise<any[]> {
  const entries = (await a.call('GET', '/v1/audit?limit=200')).body.entries as any[];
  return entries.filter((e) => e.action === 'policy.changed');
}

// A watches the file; B learns of changes only from A's announcement (and re-reads its own file).
const it = appTest({ policy: policyText(START), slack: true, appOptions: { relayPollMs: 200, policyReload: { debounceMs: 100 } } });
it.beforeAll(async ({ app, startApp, slack: fakeSlack, policyFile, prefix: fixturePrefix }) => {
  a = app;
  slack = fakeSlack;
  file = policyFile!;
  prefix = fixturePrefix;
  b = await startApp({ appOptions: { policyReload: { debounceMs: 100, watchFiles: false } } });
  const agent = { ...sampleAgent, owner: 'owner@example.com', grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 100_000 } }, { scope: 'crm:write' }] };
  for (const id of ['pay-bot', 'resp-a-bot', 'resp-b-bot']) expect((await a.call('PUT', `/v1/agents/${id}`, agent)).status).toBeLessThan(300);
}, 60_000);

afterAll(async () => {
  sdk?.close();
});

describe('the policy changes without a restart, on every replica', () => {
  it('a file change alone adds a responder on both instances; readyz, the metric and one audit entry follow', async () => {
    const before = hashOf(policyText(START));
    expect(await readyHash(a)).toBe(before);
    expect(await readyHash(b)).toBe(before);
    expect(await command(a, 'U0NEWONCALL', 'contain resp-a-bot suspicious')).toContain('contain needs one of these roles');
    expect(await command(b, 'U0NEWONCALL', 'contain resp-b-bot suspicious')).toContain('contain needs one of these roles');

    const next = { ...START, oncall: ['U0ONCALL1', 'U0NEWONCALL'] };
    rewrite(policyText(next));
    const after = hashOf(policyText(next));
    await waitFor(async () => (await readyHash(a)) === after && (await readyHash(b)) === after, 10_000, 'both replicas to run the new policy');

    expect(await command(a, 'U0NEWONCALL', 'contain resp-a-bot suspicious')).toContain('Contained resp-a-bot');
    expect(await command(b, 'U0NEWONCALL', 'contain resp-b-bot suspicious')).toContain('Contained resp-b-bot');

    const metrics = (await b.call('GET', '/metrics', undefined, { token: null })).body as string;
    expect(metrics).toContain(`armalo_policy_info{hash="${after}"} 1`);
    expect(metrics).not.toContain(`armalo_policy_info{hash="${before}"}`);

    const audits = await policyAudits();
    expect(audits).toHaveLength(1);
    expect(audits[0].payload).toMatchObject({ from: before, to: after, summary: { members: { 'security-oncall': { added: ['slack:U0NEWONCALL'], removed: [] } }, rolesAdded: [], rolesRemoved: [] } });
  });

  it('an approver removed from the role: their click on a pending request is refused with a clear message', async () => {
    const created = await a.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 50_000 }, justification: 'pay the reinsurer' });
    expect(created.status).toBe(201);
    const id = created.body.id as string;

    const next = { oncall: ['U0ONCALL1', 'U0NEWONCALL'], risk: ['U0RISK2'], amountOver: 10_000 };
    rewrite(policyText(next));
    // Through the app (as SIGHUP does) on B this time; A follows by the broadcast (or its watch).
    expect((await b.reloadPolicy()).outcome).toBe('applied');
    await waitFor(async () => (await readyHash(a)) === hashOf(policyText(next)), 10_000, 'A to follow');

    for (const app of [a, b]) expect(await approveClick(app, 'U0RISK', id)).toContain('you are no longer in role risk-owner under the current policy');
    // The route it was created with still stands for the others.
    expect(await approveClick(b, 'U0RISK2', id)).toContain('1 of 2');
    const view = (await a.call('GET', `/v1/approval-requests/${id}`)).body;
    expect(view.status).toBe('pending');
    expect(view.decisions.map((d: any) => d.by)).toEqual(['slack:U0RISK2']);

    const audits = await policyAudits();
    expect(audits).toHaveLength(2);
    expect(audits[0].payload.summary.members['risk-owner']).toEqual({ added: [], removed: ['slack:U0RISK'] });
  });

  it('a tightened routing rule routes new decisions, requests and connected SDKs by the new rule on both instances', async () => {
    // An agent SDK connected to B before the change answers check() from the routing in its snapshot.
    sdk = createArmaloClient({ url: b.url, token: TOKEN, agentId: 'pay-bot', reconnect: { initialDelayMs: 20, maxDelayMs: 100 } });
    await sdk.ready({ timeoutMs: 10_000 });
    expect(sdk.check('payments:transfer', { amount: 5000 }).decision).toBe('allow');
    expect(await decision(a, 'pay-bot', 5000)).toBe('allow');
    expect(await decision(b, 'pay-bot', 5000)).toBe('allow');
    expect((await b.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 5000 }, justification: 'small' })).status).toBe(400);

    const next = { oncall: ['U0ONCALL1', 'U0NEWONCALL'], risk: ['U0RISK2'], amountOver: 1000 };
    rewrite(policyText(next));
    await waitFor(async () => (await readyHash(a)) === hashOf(policyText(next)) && (await readyHash(b)) === hashOf(policyText(next)), 10_000, 'both replicas to run the tighter rule');

    expect(await decision(a, 'pay-bot', 5000)).toBe('approval_required');
    expect(await decision(b, 'pay-bot', 5000)).toBe('approval_required');
    await waitFor(() => sdk!.check('payments:transfer', { amount: 5000 }).decision === 'approval_required', 5000, 'the SDK to get the new routing');
    const created = await b.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 5000 }, justification: 'small' });
    expect(created.status).toBe(201);
    expect(created.body.route.ruleId).toBe('big-payments');
    const audits = await policyAudits();
    expect(audits).toHaveLength(3);
    expect(audits[0].payload.summary.routingChanged).toEqual(['big-payments']);
  });

  it('an invalid file changes nothing: the log and the incidents channel say why, once', async () => {
    const running = await readyHash(a);
    const auditsBefore = (await policyAudits()).length;
    rewrite(policyText({ oncall: ['U0ONCALL1'], risk: ['U0RISK2'], amountOver: 1000 }).replace('contain: [security-oncall, ciso]', 'contain: [security-oncall, cisoo]'));
    await waitFor(() => a.logs.lines.some((l) => String(l.msg).includes('the policy file is invalid')), 10_000, 'the error in the log');
    const line = a.logs.lines.find((l) => String(l.msg).includes('the policy file is invalid'))!;
    expect(line.level).toBe('error');
    expect(String(line.msg)).toContain('permissions.contain[1]: unknown role "cisoo"');

    // B re-reads too (as after an announcement or SIGHUP): rejected the same way.
    const outcome = await b.reloadPolicy();
    expect(outcome).toMatchObject({ outcome: 'rejected', hash: running });
    expect((await a.reloadPolicy()).outcome).toBe('rejected');

    expect(await readyHash(a)).toBe(running);
    expect(await readyHash(b)).toBe(running);
    // The on-call member the invalid file would have removed keeps the power.
    expect(await command(b, 'U0NEWONCALL', 'status pay-bot')).not.toContain('needs a role');
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => JSON.stringify(p.args).includes('is *invalid*')), 10_000, 'the notice in the incidents channel');
    const notices = slack.posts('C0INCIDENTS').filter((p) => JSON.stringify(p.args).includes('is *invalid*'));
    expect(notices).toHaveLength(1);
    expect(JSON.stringify(notices[0]!.args)).toContain('unknown role');
    expect(await a.db.selectFrom('outbox').select('id').where('job_name', '=', 'policy-invalid').execute()).toHaveLength(1);
    expect(await policyAudits()).toHaveLength(auditsBefore);
  });

  it('a reload with the same content changes nothing and audits nothing', async () => {
    rewrite(policyText({ oncall: ['U0ONCALL1', 'U0NEWONCALL'], risk: ['U0RISK2'], amountOver: 1000 }));
    await waitFor(async () => (await a.reloadPolicy()).outcome === 'unchanged' && (await b.reloadPolicy()).outcome === 'unchanged', 10_000, 'the valid file back');
    expect(await policyAudits()).toHaveLength(3);
  });
});

describe('announcements on the policy channel', () => {
  it('malformed or foreign announcements change nothing and break nothing', async () => {
    const running = await readyHash(b);
    const redis = new Redis(REDIS_URL);
    try {
      for (const message of ['not json', '{"hash": 42}', '{"hash":"zz"}', '[]', 'null', JSON.stringify({ hash: 'f'.repeat(64) })]) {
        await redis.publish(`${prefix}:policy`, message);
      }
    } finally {
      redis.disconnect();
    }
    // A well-formed hash of a policy nobody has only makes B re-read its own file, which is unchanged.
    expect((await b.call('GET', '/readyz', undefined, { token: null })).status).toBe(200);
    expect(await readyHash(b)).toBe(running);
    expect((await b.reloadPolicy()).outcome).toBe('unchanged');
  });
});

describe('a pending restore confirmation under a changed policy', () => {
  it('a responder removed from the restore roles can no longer confirm; one still in them can', async () => {
    const asked = await command(a, 'U0ONCALL1', 'restore resp-b-bot false alarm');
    expect(asked).toContain('a second person must confirm');
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => JSON.stringify(p.args).includes('asks to restore') && JSON.stringify(p.args).includes('resp-b-bot')), 10_000, 'the confirmation request');
    const request = slack.posts('C0INCIDENTS').find((p) => JSON.stringify(p.args).includes('asks to restore') && JSON.stringify(p.args).includes('resp-b-bot'))!;
    const confirmation = ((request.args.blocks as any[]).find((block) => block.type === 'actions').elements[0].value) as string;

    const next = { oncall: ['U0ONCALL1'], risk: ['U0RISK2'], amountOver: 1000 };
    rewrite(policyText(next));
    await waitFor(async () => (await readyHash(a)) === hashOf(policyText(next)) && (await readyHash(b)) === hashOf(policyText(next)), 10_000, 'both replicas to drop the responder');

    const confirm = async (app: TestApp, user: string) => {
      const id = `confirm-${++n}`;
      const res = await postSigned(app.url, blockActionBody({ user_id: user, action_id: 'armalo_confirm', value: confirmation, response_url: slack.responseUrl(id) }));
      expect(res.status).toBe(200);
      await waitFor(() => slack.responses.some((r) => r.id === id), 5000, `the answer to ${id}`);
      return JSON.stringify(slack.responses.find((r) => r.id === id)!.body);
    };
    expect(await confirm(b, 'U0NEWONCALL')).toContain('Not allowed');
    expect(await decision(a, 'resp-b-bot', 1)).not.toBe('allow');
    expect(await confirm(b, 'U0CISO')).toContain('Restored resp-b-bot');
    expect(await policyAudits()).toHaveLength(4);
  });
});

describe('PolicyHolder', () => {
  it('swaps the shared object in place and re-derives data only from a replaced key', () => {
    const first = parsePolicyText(policyText(START));
    const holder = new PolicyHolder(first);
    const shared = holder.policy;
    let derivations = 0;
    const people = derivedFrom(
      () => shared.roles,
      (roles) => (derivations++, roles['security-oncall']!.members.length),
    );
    expect(people()).toBe(1);
    expect(people()).toBe(1);
    expect(derivations).toBe(1);
    const seen: string[] = [];
    holder.onChange(({ previousHash, hash }) => seen.push(`${previousHash.slice(0, 4)}>${hash.slice(0, 4)}`));
    expect(holder.replace(parsePolicyText(policyText(START)))).toBe(false);
    expect(holder.replace(parsePolicyText(policyText({ ...START, oncall: ['U0A1', 'U0A2', 'U0A3'] })))).toBe(true);
    expect(holder.policy).toBe(shared);
    expect(people()).toBe(3);
    expect(seen).toHaveLength(1);
    expect(holder.hash).toBe(hashOf(policyText({ ...START, oncall: ['U0A1', 'U0A2', 'U0A3'] })));
  });

  it('summarises roles, members, permissions and routing rules', () => {
    const before = parsePolicyText(policyText(START));
    const after = parsePolicyText(
      policyText({ ...START, risk: ['U0RISK'], amountOver: 500 }).replace('revoke: [ciso]', 'revoke: [ciso, security-oncall]').replace('  platform:', '  auditors: { members: [{ email: a@example.com }] }\n  platform:'),
    );
    const summary = summarizePolicyChange(before, after);
    expect(summary).toMatchObject({
      rolesAdded: ['auditors'],
      rolesRemoved: [],
      members: { 'risk-owner': { added: [], removed: ['slack:U0RISK2'] } },
      permissions: { revoke: { from: ['ciso'], to: ['ciso', 'security-oncall'] } },
      routingAdded: [],
      routingRemoved: [],
      routingChanged: ['big-payments'],
    });
  });
});
