import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import type { FakeSlack } from './support/fake-slack.js';
import { postSigned, slashCommandBody } from './support/slack-requests.js';
import { APPROVALS_TEST_POLICY } from './support/approvals-policy.js';

let app: TestApp;
let slack: FakeSlack;
let n = 0;
const agent = { ...sampleAgent, owner: 'owner@example.com', grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 100_000 } }, { scope: 'mail:send' }] };

const it = appTest({
  policy: APPROVALS_TEST_POLICY,
  slack: true,
  slackUsers: { 'risk2@example.com': 'U0RISK2', 'ciso@example.com': 'U0CISO' },
  appOptions: { relayPollMs: 200 },
});
it.beforeAll(async ({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
  await waitFor(async () => (await app.db.selectFrom('chat_identities').select('user_id').where('email', '=', 'risk2@example.com').executeTakeFirst())?.user_id === 'U0RISK2', 5000, 'the directory');
  await app.call('PUT', '/v1/agents/pay-bot', agent);
});

const textOf = (x: any) => JSON.stringify(x?.blocks ?? x);

function payload(type: string, user: string, extra: Record<string, unknown>) {
  return new URLSearchParams({
    payload: JSON.stringify({ type, user: { id: user, username: user.toLowerCase(), team_id: 'T0TEAM' }, team: { id: 'T0TEAM', domain: 'example' }, api_app_id: 'A0APP', token: 'x', trigger_id: `${Date.now()}.${++n}.trig`, ...extra }),
  }).toString();
}

async function click(user: string, actionId: string, requestId: string) {
  const id = `r${++n}`;
  const res = await postSigned(
    app.url,
    payload('block_actions', user, {
      response_url: slack.responseUrl(id),
      container: { type: 'message', channel_id: user, message_ts: '1' },
      channel: { id: user },
      actions: [{ type: 'button', action_id: actionId, block_id: `approval:${requestId}`, value: requestId, action_ts: '1' }],
    }),
  );
  expect(res.status).toBe(200);
  await waitFor(() => slack.responses.some((r) => r.id === id) || slack.calls.some((c) => c.method === 'views.open' && c.args.view?.private_metadata === requestId && c.at > Date.now() - 2000), 5000, `the answer to ${id}`);
  return slack.responses.find((r) => r.id === id)?.body;
}

async function submitDeny(user: string, requestId: string, reason: string) {
  return postSigned(
    app.url,
    payload('view_submission', user, {
      view: {
        id: `V${++n}`,
        type: 'modal',
        callback_id: 'armalo_deny_modal',
        private_metadata: requestId,
        state: { values: { reason: { reason_input: { type: 'plain_text_input', value: reason } } } },
      },
    }),
  );
}

const cardsFor = (requestId: string) => slack.posts().filter((p) => textOf(p.args).includes(requestId));

describe('approval cards in Slack', () => {
  it('posts a card to each approver and the approvals channel; refuses people who may not decide; one final transition under 20 concurrent clicks', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 50_000 }, justification: 'pay the reinsurer' });
    const id = created.body.id as string;
    await waitFor(() => cardsFor(id).length === 4, 5000, 'four card copies');
    expect(cardsFor(id).map((p) => p.args.channel).sort()).toEqual(['C0APPROVALS', 'U0CISO', 'U0RISK', 'U0RISK2']);
    const card = textOf(cardsFor(id)[0]!.args);
    expect(card).toContain('Approval needed');
    expect(card).toContain('pay the reinsurer');
    expect(card).toContain('0 of 2');
    expect(card).toContain('armalo_approve');

    expect(textOf(await click('U0OWNER', 'armalo_approve', id))).toContain('you own this agent');
    expect(textOf(await click('U0ONCALL1', 'armalo_approve', id))).toContain("not on this request's route");
    const first = await click('U0RISK', 'armalo_approve', id);
    expect(first?.text).toContain('1 of 2');
    expect(textOf(await click('U0RISK', 'armalo_approve', id))).toContain('already decided');
    await waitFor(() => slack.updates().filter((u) => textOf(u.args).includes('1 of 2') && textOf(u.args).includes(id)).length >= 4, 5000, 'every copy to show 1 of 2');

    await Promise.all(Array.from({ length: 20 }, (_, i) => click(i % 2 ? 'U0CISO' : 'U0RISK2', 'armalo_approve', id)));
    const view = (await app.call('GET', `/v1/approval-requests/${id}`)).body;
    expect(view.status).toBe('approved');
    expect(view.decisions).toHaveLength(2);
    const audit = (await app.call('GET', '/v1/audit?agentId=pay-bot&limit=50')).body.entries;
    expect(audit.filter((e: any) => e.action === 'approval.approved')).toHaveLength(1);
    await waitFor(() => slack.updates().filter((u) => textOf(u.args).includes('APPROVED') && textOf(u.args).includes(id)).length >= 4, 5000, 'every copy to show APPROVED');
    const final = slack.updates().filter((u) => textOf(u.args).includes('APPROVED') && textOf(u.args).includes(id)).at(-1)!;
    expect(textOf(final.args)).not.toContain('armalo_approve');
    // The agent's long-poll sees it at once, and its next decision for that transfer is allowed, once.
    expect((await app.call('GET', `/v1/approval-requests/${id}?wait=5`)).body.status).toBe('approved');
    const decide = async () => (await app.call('POST', '/v1/decisions', { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 50_000 } })).body.decision;
    expect(await decide()).toBe('allow');
    expect(await decide()).toBe('approval_required');
  });

  it('Deny opens a modal that requires a reason; the denial updates every copy', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'mail:send', justification: 'quarterly letter' });
    const id = created.body.id as string;
    await waitFor(() => cardsFor(id).length === 3, 5000, 'cards for on-call and the approvals channel');
    expect(cardsFor(id).map((p) => p.args.channel).sort()).toEqual(['C0APPROVALS', 'U0ONCALL1', 'U0ONCALL2']);
    await click('U0ONCALL1', 'armalo_deny', id);
    await waitFor(() => slack.calls.some((c) => c.method === 'views.open' && c.args.view?.private_metadata === id), 5000, 'the modal');
    const opened = slack.calls.find((c) => c.method === 'views.open' && c.args.view?.private_metadata === id)!;
    expect(opened.args.trigger_id).toBeTruthy();
    const empty = await submitDeny('U0ONCALL1', id, '  ');
    expect(empty.body).toMatchObject({ response_action: 'errors' });
    expect((await app.call('GET', `/v1/approval-requests/${id}`)).body.status).toBe('pending');
    const denied = await submitDeny('U0ONCALL1', id, 'not before legal review');
    expect(denied.status).toBe(200);
    const view = (await app.call('GET', `/v1/approval-requests/${id}`)).body;
    expect(view).toMatchObject({ status: 'denied', decisions: [{ by: 'slack:U0ONCALL1', decision: 'deny', reason: 'not before legal review' }] });
    await waitFor(() => slack.updates().filter((u) => textOf(u.args).includes('DENIED') && textOf(u.args).includes(id)).length >= 3, 5000, 'every copy to show DENIED');
  });

  it("a channel subscribed to an agent's approvals gets a copy of its cards", async () => {
    const sub = await postSigned(app.url, slashCommandBody({ user_id: 'U0CISO', text: 'subscribe pay-bot approvals', channel_id: 'C0FINANCE', response_url: slack.responseUrl(`s${++n}`) }));
    expect(textOf(sub.body)).toContain('approvals notices for pay-bot');
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 15_000 }, justification: 'subscribed copy' });
    await waitFor(() => slack.posts('C0FINANCE').some((p) => textOf(p.args).includes(created.body.id)), 5000, 'the copy in the subscribed channel');
    // Leave nothing behind for the tests that follow.
    await app.call('POST', `/v1/approval-requests/${created.body.id}/cancel`);
    await postSigned(app.url, slashCommandBody({ user_id: 'U0CISO', text: 'unsubscribe pay-bot approvals', channel_id: 'C0FINANCE', response_url: slack.responseUrl(`s${++n}`) }));
  });

  it('/armalo approvals lists what waits on the caller, privately', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'mail:send', justification: 'renewal reminders' });
    const id = created.body.id as string;
    const ask = async (user: string) =>
      (await postSigned(app.url, slashCommandBody({ user_id: user, text: 'approvals', response_url: slack.responseUrl(`a${++n}`) }))).body;
    const mine = await ask('U0ONCALL2');
    expect(mine.response_type).toBe('ephemeral');
    expect(textOf(mine)).toContain('renewal reminders');
    expect(textOf(mine)).toContain(id);
    expect(textOf(await ask('U0RISK'))).toContain('Nothing waits on you');
    await app.approvals.decide(id, { actor: 'slack:U0ONCALL2', platform: 'slack', slack: 'U0ONCALL2', emails: [] }, 'approve', null);
    expect(textOf(await ask('U0ONCALL2'))).not.toContain(id);
  });

  it('the App Home shows what waits on you, refreshed when opened and after decisions', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'mail:send', justification: 'home tab check' });
    const id = created.body.id as string;
    const opened = await postSigned(
      app.url,
      JSON.stringify({
        token: 'x',
        team_id: 'T0TEAM',
        api_app_id: 'A0APP',
        type: 'event_callback',
        event_id: `Ev${++n}`,
        event_time: Math.floor(Date.now() / 1000),
        event: { type: 'app_home_opened', user: 'U0ONCALL1', channel: 'D0HOME', tab: 'home', event_ts: String(Date.now() / 1000) },
      }),
      { json: true },
    );
    expect(opened.status).toBe(200);
    const homeOf = (user: string) => slack.calls.filter((c) => c.method === 'views.publish' && c.args.user_id === user);
    await waitFor(() => homeOf('U0ONCALL1').some((c) => textOf(c.args.view).includes('home tab check')), 5000, 'the home tab');
    expect(textOf(homeOf('U0ONCALL1').at(-1)!.args.view)).toContain('Waiting on you');
    await app.approvals.decide(id, { actor: 'slack:U0ONCALL1', platform: 'slack', slack: 'U0ONCALL1', emails: [] }, 'approve', null);
    await waitFor(
      () => homeOf('U0ONCALL1').some((c) => textOf(c.args.view).includes('Recently decided') && textOf(c.args.view).includes('now *approved*')),
      5000,
      'the home tab after the decision',
    );
  });

  it("a burst of requests republishes each approver's App Home a few times, not once per request, and the last shows what waits now", async () => {
    const homes = () => slack.calls.filter((c) => c.method === 'views.publish' && c.args.user_id === 'U0ONCALL2');
    const before = homes().length;
    const burst = 30;
    const created = await Promise.all(
      Array.from({ length: burst }, (_, i) => app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'mail:send', justification: `home burst ${i}` })),
    );
    expect(created.map((c) => c.status)).toEqual(created.map(() => 201));
    const ids = created.map((c) => c.body.id as string);
    // Two on-call approvers' DMs and the approvals channel (the owner may not approve their own agent).
    await waitFor(() => ids.every((id) => cardsFor(id).length === 3), 30_000, 'every card of the burst');
    // Nothing lost: the last publish is what waits on them now, whatever the coalescing skipped.
    const oncall2 = { actor: 'slack:U0ONCALL2', platform: 'slack' as const, slack: 'U0ONCALL2', emails: [] };
    await waitFor(
      async () => {
        const waiting = await app.approvals.waitingOn(oncall2);
        const last = homes().at(-1);
        return last !== undefined && waiting.length > 0 && waiting.every((v) => textOf(last.args.view).includes(v.id));
      },
      15_000,
      'the App Home to show the current state',
    );
    // One publish per request per approver before the coalescing.
    expect(homes().length - before).toBeLessThan(burst / 2);
  }, 60_000);

  it("a 429 on one approver's DM does not hold up the other cards", async () => {
    slack.failNext('chat.postMessage', { status: 429, retryAfter: 4 });
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 70_000 }, justification: 'rate limited' });
    const id = created.body.id as string;
    // The first stage: both risk owners, the CISO and the approvals channel. (On-call's cards come
    // with the escalation after 3 s, which may land before the refused card's 4 s are up.)
    const firstStage = new Set(['U0RISK', 'U0RISK2', 'U0CISO', 'C0APPROVALS']);
    const cards = () => cardsFor(id).filter((p) => firstStage.has(String(p.args.channel)));
    // A generous bound: this waits for a condition, and a loaded CI machine may be slow to meet it.
    await waitFor(() => cards().length === 4, 30_000, 'all four cards, the refused one after Retry-After');
    expect(new Set(cards().map((p) => p.args.channel))).toEqual(firstStage);
    // Read from when Slack saw each call: the refused copy came back after its 4 s; the other three
    // went out right after the refusal and did not wait for it.
    const refused = slack.calls.filter((c) => c.method === 'chat.postMessage!failed' && textOf(c.args).includes(id));
    expect(refused).toHaveLength(1);
    const retried = cards().find((p) => p.args.channel === refused[0]!.args.channel)!;
    expect(retried.at - refused[0]!.at).toBeGreaterThanOrEqual(4000);
    const others = cards().filter((p) => p !== retried);
    expect(others).toHaveLength(3);
    expect(Math.max(...others.map((p) => p.at)) - refused[0]!.at).toBeLessThan(4000);
  }, 45_000);
});
