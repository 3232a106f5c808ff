import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { type FakeConnector, teamsMessage } from './support/fake-connector.js';

// Teams gets what Slack gets (issue 13): incident and approval subscriptions for Teams channels, a
// channel copy of approval cards, reminders and escalations in the approver's personal chat. All
// through the real Teams adapter and the fake Bot Connector.
const ONCALL = '00000000-0000-0000-0000-0000000000a1';
const ONCALL2 = '00000000-0000-0000-0000-0000000000a2';
const RISK = '00000000-0000-0000-0000-0000000000b1';
const CISO = '00000000-0000-0000-0000-0000000000c1';
const INCIDENTS = '19:incidents@thread.tacv2';
const APPROVALS = '19:approvals@thread.tacv2';
const SECURITY = '19:security@thread.tacv2';
const FINANCE = '19:finance@thread.tacv2';
const POLICY = `
roles:
  security-oncall: { members: [{ teams: ${ONCALL} }, { teams: ${ONCALL2} }] }
  risk-owner: { members: [{ teams: ${RISK} }] }
  ciso: { members: [{ teams: ${CISO} }] }
permissions:
  contain: [security-oncall]
  narrow: [security-oncall]
  revoke: [security-oncall]
  restore: [security-oncall]
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [risk-owner]
    remindAfter: 2s
    escalateAfter: 3s
    escalateTo: [ciso]
    expireAfter: 1h
  - id: mail-out
    match: { action: "mail:send" }
    approvers: [security-oncall]
channels:
  incidents: { teams: "${INCIDENTS}" }
  approvals: { teams: "${APPROVALS}" }
`;
let app: TestApp;
let connector: FakeConnector;
let n = 0;

const post = (activity: unknown) => fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(activity) });

/** The bot is added to a team channel: Teams sends a conversationUpdate from it. */
async function install(channel: string) {
  const res = await post({
    type: 'conversationUpdate',
    id: `cu-${++n}`,
    serviceUrl: connector.url,
    channelId: 'msteams',
    from: { id: '29:admin', aadObjectId: ONCALL },
    conversation: { id: channel, conversationType: 'channel', isGroup: true, tenantId: 'tenant-1' },
    recipient: { id: '28:armalo-bot', name: 'Armalo' },
    membersAdded: [{ id: '28:armalo-bot' }],
    channelData: { team: { id: '19:team@thread.tacv2' }, channel: { id: channel }, tenant: { id: 'tenant-1' } },
  });
  expect(res.status).toBeLessThan(300);
  await waitFor(async () => (await app.db.selectFrom('teams_conversations').select('kind').where('conversation_id', '=', channel).executeTakeFirst()) !== undefined, 5000, `the reference of ${channel}`);
}

/** A message to the bot, in a person's chat or (mentioning it) in a channel; answers the reply's text. */
async function say(text: string, aadObjectId: string, channel?: string) {
  const activity = teamsMessage(connector.url, { text, aadObjectId, ...(channel ? { conversationId: channel, conversationType: 'channel' as const } : {}) });
  const before = connector.sent(activity.conversation.id).length;
  expect((await post(activity)).status).toBeLessThan(300);
  await waitFor(() => connector.sent(activity.conversation.id).length > before, 8000, `the answer to "${text}"`);
  return JSON.stringify(connector.sent(activity.conversation.id).at(-1)!.body);
}

const has = (c: { body: unknown }, ...words: string[]) => words.every((w) => JSON.stringify(c.body).includes(w));
const personal = (aad: string) => `a:personal-${aad}`;

const it = appTest({ policy: POLICY, teams: true, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, connector: fakeConnector }) => {
  app = started;
  connector = fakeConnector;
  // The approvers have talked to the bot once: their personal chats are known.
  for (const aad of [ONCALL, ONCALL2, RISK, CISO]) await say('help', aad);
  for (const channel of [SECURITY, APPROVALS, FINANCE]) await install(channel);
});

describe('Teams at parity with Slack', () => {
  it("a Teams channel subscribed to an agent's incidents gets the notice, its thread and its updates", async () => {
    await app.call('PUT', '/v1/agents/inc-bot', sampleAgent);
    expect(await say('<at>Armalo</at> subscribe inc-bot incidents', ONCALL, SECURITY)).toContain('incidents notices for inc-bot');
    expect(await say('contain inc-bot exfiltration suspected', ONCALL)).toContain('Contained inc-bot');
    await waitFor(() => connector.sent(SECURITY).some((c) => c.method === 'POST' && has(c, 'inc-bot', 'CONTAINED')), 10_000, 'the incident notice in the subscribed channel');
    expect(connector.sent(SECURITY).filter((c) => c.method === 'POST' && has(c, 'inc-bot', 'Incident'))).toHaveLength(1);

    expect(await say('narrow inc-bot crm:write also crm', ONCALL)).toContain('Narrowed inc-bot');
    await waitFor(() => connector.sent().some((c) => c.conversationId.startsWith(`${SECURITY};messageid=`) && has(c, 'narrowed')), 10_000, 'the step in the notice thread');
    await waitFor(() => connector.sent(SECURITY).some((c) => c.method === 'PUT' && has(c, 'inc-bot')), 10_000, 'the notice updated in place');
    expect(connector.sent(SECURITY).filter((c) => c.method === 'POST' && has(c, 'inc-bot', 'Incident'))).toHaveLength(1);
  });

  it("approval cards: a copy in the policy's approvals channel and in a channel subscribed to the agent's approvals, both updated when decided", async () => {
    await app.call('PUT', '/v1/agents/mail-bot', { ...sampleAgent, owner: 'owner@example.com' });
    expect(await say('<at>Armalo</at> subscribe mail-bot approvals', ONCALL, FINANCE)).toContain('approvals notices for mail-bot');
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'mail-bot', action: 'mail:send', justification: 'quarterly letter' });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const card = (conversation: string) => connector.sent(conversation).find((c) => c.method === 'POST' && has(c, id));
    await waitFor(() => !!card(APPROVALS) && !!card(FINANCE) && !!card(personal(ONCALL)) && !!card(personal(ONCALL2)), 10_000, 'the channel copies and the approvers\' cards');
    for (const copy of [card(APPROVALS)!, card(FINANCE)!]) {
      const content = copy.body.attachments[0].content;
      expect(JSON.stringify(content)).toContain('Approval needed');
      expect(JSON.stringify(content.actions)).toContain('armalo.approve');
    }

    await app.approvals.decide(id, { actor: `teams:${ONCALL}`, platform: 'teams', teams: ONCALL, emails: [] }, 'approve', null);
    for (const channel of [APPROVALS, FINANCE, personal(ONCALL2)]) {
      await waitFor(() => connector.sent(channel).some((c) => c.method === 'PUT' && has(c, id, 'APPROVED')), 10_000, `the copy in ${channel} to show APPROVED`);
    }
  });

  it("a reminder, then an escalation, reach the approvers' personal chats", async () => {
    await app.call('PUT', '/v1/agents/pay-bot', { ...sampleAgent, owner: 'owner@example.com', grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 100_000 } }] });
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 50_000 }, justification: 'slow approvers' });
    const id = created.body.id as string;
    await waitFor(() => connector.sent(personal(RISK)).some((c) => c.method === 'POST' && has(c, id)), 10_000, 'the card in the risk owner\'s chat');
    // At 2 s: a reminder in the chat of the approver who has not decided.
    await waitFor(() => connector.sent(personal(RISK)).some((c) => c.method === 'POST' && has(c, 'Reminder', 'pay-bot')), 10_000, 'the reminder');
    // At 3 s: escalated to the CISO, who gets the card (it says so) and a note beside it.
    await waitFor(() => connector.sent(personal(CISO)).some((c) => c.method === 'POST' && has(c, id)), 10_000, 'the escalated card');
    expect(JSON.stringify(connector.sent(personal(CISO)).find((c) => c.method === 'POST' && has(c, id))!.body)).toContain('escalated');
    await waitFor(() => connector.sent(personal(CISO)).some((c) => c.method === 'POST' && has(c, 'Escalated', 'pay-bot')), 10_000, 'the escalation note');
    // Once each.
    expect(connector.sent(personal(RISK)).filter((c) => c.method === 'POST' && has(c, 'Reminder', 'pay-bot'))).toHaveLength(1);
    expect(connector.sent(personal(RISK)).filter((c) => c.method === 'POST' && has(c, id))).toHaveLength(1);
  });
});
