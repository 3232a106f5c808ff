import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { clickButton, decisionOf, slashCommand, textOf } from './support/drive.js';
import type { FakeSlack } from './support/fake-slack.js';
import { postSigned, slashCommandBody } from './support/slack-requests.js';
import { SLACK_TEST_POLICY } from './support/slack-policy.js';
import { parsePolicyText } from '../src/policy/load-policy.js';
import { ChatCommands } from '../src/chat/chat-commands.js';
import { systemClock } from '../src/core/clock.js';

let app: TestApp;
let slack: FakeSlack;

const it = appTest({
  policy: SLACK_TEST_POLICY,
  slack: true,
  slackUsers: { 'risk@example.com': 'U0RISK' },
  appOptions: { relayPollMs: 200, worker: { lockDurationMs: 5000, stalledIntervalMs: 2000 } },
});
it.beforeAll(({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
});

/** Sends `/armalo <text>` as `user`, signed; returns the HTTP answer (the private acknowledgement). */
/** Sends `/armalo <text>` as `user`, signed; returns the HTTP answer (the private acknowledgement). */
const command = (user: string, text: string, extra: { trigger_id?: string; retryNum?: number } = {}) =>
  slashCommand(app, slack, user, text, { anyStatus: true, ...(extra.trigger_id ? { triggerId: extra.trigger_id } : {}), ...(extra.retryNum === undefined ? {} : { retryNum: extra.retryNum }) });
const click = (user: string, actionId: string, value: string) => clickButton(app, slack, user, actionId, value);

const decision = async (agentId: string, action: string) => (await decisionOf(app, agentId, action, { amount: 5 })).decision;

function confirmationId(body: any): string {
  const actions = (body.blocks as any[]).find((b) => b.type === 'actions');
  return actions.elements[0].value as string;
}

describe('/armalo incident commands over signed HTTP', () => {
  it('contain: acknowledged at once, enforced at once, notice in the incidents channel; later steps go to its thread', async () => {
    await app.call('PUT', '/v1/agents/underwriting-bot', sampleAgent);
    const res = await command('U0ONCALL1', 'contain underwriting-bot prompt injection suspected');
    expect(res.status).toBe(200);
    expect(res.ms).toBeLessThan(3000);
    expect(res.body.response_type).toBe('ephemeral');
    expect(textOf(res.body)).toContain('Contained underwriting-bot');
    expect(await decision('underwriting-bot', 'crm:write')).toBe('deny');

    await waitFor(() => slack.posts('C0INCIDENTS').length === 1, 5000, 'the incident notice');
    const root = slack.posts('C0INCIDENTS')[0]!;
    expect(root.args.thread_ts).toBeUndefined();
    expect(textOf(root.args)).toContain('CONTAINED');
    expect(textOf(root.args)).toContain('<@U0ONCALL1>');
    expect(textOf(root.args)).toContain('prompt injection suspected');

    const narrowed = await command('U0ONCALL2', 'narrow underwriting-bot mail:*,crm:write mail looks odd too');
    expect(textOf(narrowed.body)).toContain('Narrowed underwriting-bot');
    await waitFor(() => slack.posts('C0INCIDENTS').length === 2, 5000, 'the thread reply');
    const reply = slack.posts('C0INCIDENTS')[1]!;
    const rootTs = (await app.db.selectFrom('chat_messages').select('ts').where('key', 'like', 'slack:incident:%').executeTakeFirstOrThrow()).ts;
    expect(reply.args.thread_ts).toBe(rootTs);
    expect(textOf(reply.args)).toContain('narrowed');
    expect(textOf(reply.args)).toContain('<@U0ONCALL2>');
    await waitFor(() => slack.updates().some((u) => u.args.ts === rootTs), 5000, 'the root to be updated');

    const verify = await app.call('GET', '/v1/audit/verify');
    expect(verify.body.ok).toBe(true);
    const audit = await app.call('GET', '/v1/audit?agentId=underwriting-bot');
    expect(audit.body.entries.map((e: any) => [e.action, e.actor])).toEqual([
      ['agent.narrow', 'slack:U0ONCALL2'],
      ['agent.contain', 'slack:U0ONCALL1'],
      ['agent.registered', 'api:platform'],
    ]);
  });

  it('restore under secondPerson: the requester cannot complete it; a second role holder confirms in the thread', async () => {
    const asked = await command('U0ONCALL1', 'restore underwriting-bot false alarm');
    expect(textOf(asked.body)).toContain('a second person must confirm');
    expect(await decision('underwriting-bot', 'crm:write')).toBe('deny');
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => textOf(p.args).includes('asks to restore')), 5000, 'the confirmation request in the thread');
    const request = slack.posts('C0INCIDENTS').find((p) => textOf(p.args).includes('asks to restore'))!;
    expect(request.args.thread_ts).toBeDefined();
    const id = confirmationId(request.args);

    const self = await click('U0ONCALL1', 'armalo_confirm', id);
    expect(textOf(self)).toContain('A second person must confirm');
    expect(self.replace_original).toBe(false);
    expect(await decision('underwriting-bot', 'crm:write')).toBe('deny');

    const stranger = await click('U0RANDOM', 'armalo_confirm', id);
    expect(textOf(stranger)).toContain('Not allowed');

    const second = await click('U0ONCALL2', 'armalo_confirm', id);
    expect(textOf(second)).toContain('Restored underwriting-bot');
    expect(second.replace_original).toBe(true);
    expect(await decision('underwriting-bot', 'crm:write')).toBe('allow');
    const audit = await app.call('GET', '/v1/audit?agentId=underwriting-bot&limit=1');
    expect(audit.body.entries[0]).toMatchObject({ action: 'agent.restore', actor: 'slack:U0ONCALL2' });
    expect(audit.body.entries[0].payload.action.reason).toContain('requested by slack:U0ONCALL1');
  });

  it('revoke waits for the same user to confirm; another user is refused; a double click applies once', async () => {
    await app.call('PUT', '/v1/agents/kill-bot', sampleAgent);
    const asked = await command('U0CISO', 'revoke kill-bot credentials leaked');
    expect(textOf(asked.body)).toContain('Revoke kill-bot?');
    expect(await decision('kill-bot', 'mail:send')).toBe('allow');
    const id = confirmationId(asked.body);

    const other = await click('U0ONCALL1', 'armalo_confirm', id);
    expect(textOf(other)).toContain('Only the person who asked');
    expect(await decision('kill-bot', 'mail:send')).toBe('allow');

    const [a, b] = await Promise.all([click('U0CISO', 'armalo_confirm', id), click('U0CISO', 'armalo_confirm', id)]);
    expect([textOf(a), textOf(b)].join()).toContain('kill-bot');
    expect(await decision('kill-bot', 'mail:send')).toBe('deny');
    const revokes = await app.db.selectFrom('agent_actions').select('id').where('agent_id', '=', 'kill-bot').where('kind', '=', 'revoke').execute();
    expect(revokes).toHaveLength(1);
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => textOf(p.args).includes('kill-bot')), 5000, 'the revoke notice');
    await new Promise((r) => setTimeout(r, 500));
    expect(slack.posts('C0INCIDENTS').filter((p) => textOf(p.args).includes('kill-bot') && !p.args.thread_ts)).toHaveLength(1);
  });

  it('--dry-run shows the blast radius and changes nothing', async () => {
    await app.call('PUT', '/v1/agents/dry-bot', sampleAgent);
    const before = slack.posts().length;
    const res = await command('U0ONCALL1', 'contain dry-bot --dry-run checking');
    expect(textOf(res.body)).toContain('Dry run');
    expect(textOf(res.body)).toContain('payments:transfer');
    expect(await decision('dry-bot', 'crm:write')).toBe('allow');
    expect((await app.call('GET', '/v1/agents/dry-bot')).body.status).toBe('active');
    await new Promise((r) => setTimeout(r, 500));
    expect(slack.posts().length).toBe(before);
  });

  it('--ttl lifts itself and says so in the thread', async () => {
    await app.call('PUT', '/v1/agents/ttl-bot', sampleAgent);
    const res = await command('U0ONCALL1', 'contain ttl-bot --ttl 1s short hold');
    expect(textOf(res.body)).toContain('for 1s');
    expect(await decision('ttl-bot', 'crm:write')).toBe('deny');
    await waitFor(async () => (await decision('ttl-bot', 'crm:write')) === 'allow', 8000, 'the ttl to lift');
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => textOf(p.args).includes('reached its ttl') && p.args.thread_ts), 5000, 'the expiry line in the thread');
  });

  it('a member listed only by email is recognised through users.lookupByEmail', async () => {
    await waitFor(() => slack.calls.some((c) => c.method === 'users.lookupByEmail'), 5000, 'the directory job');
    await waitFor(async () => (await app.db.selectFrom('chat_identities').select('user_id').where('email', '=', 'risk@example.com').executeTakeFirst())?.user_id === 'U0RISK', 5000, 'risk@example.com to resolve');
    await app.call('PUT', '/v1/agents/email-bot', sampleAgent);
    const res = await command('U0RISK', 'contain email-bot risk owner acting');
    expect(textOf(res.body)).toContain('Contained email-bot');
  });

  it.each([
    ['U0RANDOM', 'contain underwriting-bot x', 'contain needs one of these roles: security-oncall, ciso, risk-owner'],
    ['U0ONCALL1', 'revoke underwriting-bot x', 'revoke needs one of these roles: ciso'],
    ['U0ONCALL1', 'contain ghost-bot x', 'unknown agent ghost-bot'],
    ['U0ONCALL1', 'contain', 'contain needs an agent'],
    ['U0ONCALL1', 'narrow underwriting-bot', 'narrow needs the scopes'],
    ['U0ONCALL1', '%%% ¿¿ garbage', 'unknown command'],
    ['U0ONCALL1', 'detonate underwriting-bot', 'unknown command \\"detonate'],
    ['U0RANDOM', 'status underwriting-bot', 'needs a role in the policy'],
  ])('%s: /armalo %s → a private, specific error with the usage; nothing changes', async (user, text, message) => {
    const before = await app.call('GET', '/v1/audit?limit=1');
    const res = await command(user, text);
    expect(res.status).toBe(200);
    expect(res.body.response_type).toBe('ephemeral');
    expect(textOf(res.body)).toContain(message);
    expect(textOf(res.body)).toContain('Usage');
    const after = await app.call('GET', '/v1/audit?limit=1');
    expect(after.body.entries).toEqual(before.body.entries);
  });

  it('status shows the state, grants, open incident and last actions', async () => {
    await app.call('PUT', '/v1/agents/status-bot', sampleAgent);
    await command('U0ONCALL2', 'narrow status-bot payments:* card testing');
    const res = await command('U0ONCALL1', 'status status-bot');
    const text = textOf(res.body);
    expect(text).toContain('is narrowed');
    expect(text).toContain('`payments:transfer` suspended');
    expect(text).toContain('`crm:write` active');
    expect(text).toContain('Open incident:');
    expect(text).toContain('narrow by slack:U0ONCALL2');
    expect(text).toContain('card testing');
  });

  it('a confirmation expires: a late click changes nothing', async () => {
    await app.call('PUT', '/v1/agents/late-bot', sampleAgent);
    const asked = await command('U0CISO', 'revoke late-bot too slow');
    const id = confirmationId(asked.body);
    await app.db.updateTable('confirmations').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', id).execute();
    const late = await click('U0CISO', 'armalo_confirm', id);
    expect(textOf(late)).toContain('expired');
    expect(await decision('late-bot', 'mail:send')).toBe('allow');
    const cancelled = await command('U0CISO', 'revoke late-bot changed my mind');
    const cancel = await click('U0CISO', 'armalo_cancel', confirmationId(cancelled.body));
    expect(textOf(cancel)).toContain('Cancelled');
    expect(await decision('late-bot', 'mail:send')).toBe('allow');
  });

  it('a second-person restore is refused when the policy has no incidents channel to ask in', async () => {
    const policy = parsePolicyText(SLACK_TEST_POLICY.replace(/channels:[\s\S]*$/, ''));
    const commands = new ChatCommands({ db: app.db, clock: systemClock, agents: app.agents, policy });
    await app.call('PUT', '/v1/agents/nochan-bot', sampleAgent);
    await app.call('POST', '/v1/agents/nochan-bot/actions', { action: 'contain', reason: 'x' });
    const reply = await commands.handle({ platform: 'slack', userId: 'U0ONCALL1', emails: [] }, 'restore nochan-bot ok');
    expect(reply.tone).toBe('error');
    expect(reply.title).toContain('no incidents channel');
    expect(await app.db.selectFrom('confirmations').select('id').where('agent_id', '=', 'nochan-bot').execute()).toHaveLength(0);
  });

  it('under restore.freshEvaluation, restore waits for an evaluation newer than the incident', async () => {
    const policy = parsePolicyText(SLACK_TEST_POLICY.replace('restore: { roles: [security-oncall, ciso], secondPerson: true }', 'restore: { roles: [security-oncall, ciso], freshEvaluation: true }'));
    expect(policy.permissions.restore.freshEvaluation).toBe(true);
    const commands = new ChatCommands({ db: app.db, clock: systemClock, agents: app.agents, policy });
    const who = { platform: 'slack' as const, userId: 'U0ONCALL1', emails: [] };
    await app.call('PUT', '/v1/agents/fresh-eval-bot', sampleAgent);
    await app.call('POST', '/v1/agents/fresh-eval-bot/evaluations', { id: 'fe-old', dimension: 'safety', passed: true, observedAt: new Date(Date.now() - 86_400_000).toISOString(), source: 'redteam' });
    await app.call('POST', '/v1/agents/fresh-eval-bot/actions', { action: 'contain', reason: 'x' });
    const refused = await commands.handle(who, 'restore fresh-eval-bot looks fine');
    expect(refused.tone).toBe('error');
    expect(refused.title).toContain('Restore needs a fresh evaluation');
    expect(await decision('fresh-eval-bot', 'crm:write')).toBe('deny');
    await new Promise((r) => setTimeout(r, 10));
    await app.call('POST', '/v1/agents/fresh-eval-bot/evaluations', { id: 'fe-new', dimension: 'safety', passed: true, observedAt: new Date().toISOString(), source: 'redteam' });
    const restored = await commands.handle(who, 'restore fresh-eval-bot re-evaluated');
    expect(restored.title).toContain('Restored fresh-eval-bot');
    expect(await decision('fresh-eval-bot', 'crm:write')).toBe('allow');
  });

  it('refuses unsigned, badly signed and stale requests with 401 and changes nothing', async () => {
    await app.call('PUT', '/v1/agents/sig-bot', sampleAgent);
    const body = slashCommandBody({ user_id: 'U0ONCALL1', text: 'contain sig-bot forged', response_url: slack.responseUrl('forged') });
    expect((await postSigned(app.url, body, { secret: 'wrong-secret-0123456789' })).status).toBe(401);
    expect((await postSigned(app.url, body, { omitSignature: true })).status).toBe(401);
    expect((await postSigned(app.url, body, { omitTimestamp: true })).status).toBe(401);
    expect((await postSigned(app.url, body, { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 })).status).toBe(401);
    expect(await decision('sig-bot', 'crm:write')).toBe('allow');
  });

  it('the same command delivered twice (a Slack retry) is applied once and posted once', async () => {
    await app.call('PUT', '/v1/agents/retry-bot', sampleAgent);
    const trigger = `${Date.now()}.retry.abcdef`;
    const first = await command('U0ONCALL1', 'contain retry-bot once only', { trigger_id: trigger });
    const again = await command('U0ONCALL1', 'contain retry-bot once only', { trigger_id: trigger, retryNum: 1 });
    expect(textOf(first.body)).toContain('Contained retry-bot');
    expect(textOf(again.body)).toContain('already applied');
    const actions = await app.db.selectFrom('agent_actions').select('id').where('agent_id', '=', 'retry-bot').execute();
    expect(actions).toHaveLength(1);
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => textOf(p.args).includes('retry-bot')), 5000, 'the notice');
    await new Promise((r) => setTimeout(r, 800));
    expect(slack.posts('C0INCIDENTS').filter((p) => textOf(p.args).includes('retry-bot'))).toHaveLength(1);
  });
});

describe('Slack delivery', () => {
  it('a 429 with Retry-After: 2 delays the notice, which then arrives exactly once', async () => {
    await app.call('PUT', '/v1/agents/limited-bot', sampleAgent);
    slack.failNext('chat.postMessage', { status: 429, retryAfter: 2 });
    const started = Date.now();
    await command('U0ONCALL1', 'contain limited-bot rate limited');
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => textOf(p.args).includes('limited-bot')), 10_000, 'the notice after the 429');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    await new Promise((r) => setTimeout(r, 800));
    expect(slack.posts('C0INCIDENTS').filter((p) => textOf(p.args).includes('limited-bot'))).toHaveLength(1);
    expect(slack.calls.filter((c) => c.method === 'chat.postMessage!failed')).toHaveLength(1);
  });

  it('in a channel Slack slowed down, a later notice queues behind the one waiting its Retry-After: no call Slack would refuse, posted in order', async () => {
    await app.call('PUT', '/v1/agents/slow-bot', sampleAgent);
    await app.call('PUT', '/v1/agents/fast-bot', sampleAgent);
    slack.failNext('chat.postMessage', { status: 429, retryAfter: 3 });
    await command('U0ONCALL1', 'contain slow-bot first');
    await waitFor(() => slack.calls.some((c) => c.method === 'chat.postMessage!failed' && textOf(c.args).includes('slow-bot')), 5000, 'the 429');
    await command('U0ONCALL1', 'contain fast-bot second');
    const roots = () => slack.posts('C0INCIDENTS').filter((p) => !p.args.thread_ts && (textOf(p.args).includes('slow-bot') || textOf(p.args).includes('fast-bot')));
    await waitFor(() => roots().length === 2, 15_000, 'both notices after the Retry-After');
    // The refused one first (it waited its 3 s), then the one that queued behind it.
    expect(roots().map((p) => (textOf(p.args).includes('slow-bot') ? 'slow-bot' : 'fast-bot'))).toEqual(['slow-bot', 'fast-bot']);
    const refusedAt = slack.calls.find((c) => c.method === 'chat.postMessage!failed' && textOf(c.args).includes('slow-bot'))!.at;
    expect(roots()[0]!.at - refusedAt).toBeGreaterThanOrEqual(3000);
    // The later notice never went to Slack before its turn, so it was never refused.
    expect(slack.calls.filter((c) => c.method === 'chat.postMessage!failed' && textOf(c.args).includes('fast-bot'))).toEqual([]);
  });

  it('a notice Slack refuses for good (channel_not_found) is logged and counted, not retried forever', async () => {
    await app.call('PUT', '/v1/agents/lost-bot', sampleAgent);
    slack.failNext('chat.postMessage', { error: 'channel_not_found' });
    await command('U0ONCALL1', 'contain lost-bot nowhere to post');
    await waitFor(() => app.logs.lines.some((l) => l.msg === 'job failed for good' && l.queue === 'notify'), 5000, 'the final failure');
    const line = app.logs.lines.find((l) => l.msg === 'job failed for good' && l.queue === 'notify')!;
    expect(String(line.err)).toContain('channel_not_found');
    const metrics = await app.call('GET', '/metrics');
    expect(metrics.body).toMatch(/armalo_jobs_failed_total\{queue="notify"\} 1\b/);
    // The containment itself stands: delivery trouble never undoes enforcement.
    expect(await decision('lost-bot', 'crm:write')).toBe('deny');
  });

  it('500 twice then 200: retried with backoff, posted exactly once', async () => {
    await app.call('PUT', '/v1/agents/flaky-bot', sampleAgent);
    const failedBefore = slack.calls.filter((c) => c.method === 'chat.postMessage!failed').length;
    slack.failNext('chat.postMessage', { status: 500 }, { status: 500 });
    await command('U0ONCALL1', 'contain flaky-bot server errors');
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => textOf(p.args).includes('flaky-bot')), 15_000, 'the notice after two 500s');
    await new Promise((r) => setTimeout(r, 800));
    expect(slack.posts('C0INCIDENTS').filter((p) => textOf(p.args).includes('flaky-bot'))).toHaveLength(1);
    expect(slack.calls.filter((c) => c.method === 'chat.postMessage!failed').length - failedBefore).toBe(2);
  });
});
