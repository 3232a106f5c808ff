import { writeFileSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { cardAction, teamsSay } from './support/drive.js';
import { type FakeConnector, teamsMessage } from './support/fake-connector.js';

const ONCALL = '00000000-0000-0000-0000-0000000000a1';
const STRANGER = '00000000-0000-0000-0000-0000000000ff';
const ONCALL2 = '00000000-0000-0000-0000-0000000000a2';
const POLICY = `
roles:
  security-oncall: { members: [{ teams: ${ONCALL} }, { teams: ${ONCALL2} }] }
permissions:
  contain: [security-oncall]
  narrow: [security-oncall]
  revoke: [security-oncall]
  restore: { roles: [security-oncall], secondPerson: true }
channels:
  incidents: { teams: "19:incidents@thread.tacv2" }
`;
const SECRET = 'armalo_inbound_secret_0123456789';
let app: TestApp;
let connector: FakeConnector;
let policyFile: string;

const it = appTest({ policy: POLICY, teams: true, env: { ARMALO_WEBHOOK_SECRET: SECRET }, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, connector: fakeConnector, policyFile: file }) => {
  app = started;
  connector = fakeConnector;
  policyFile = file!;
  await app.call('PUT', '/v1/agents/teams-bot', sampleAgent);
});

/** A message from `aadObjectId` in their personal chat; the bot's reply there (its card, or the text). */
async function say(text: string, aadObjectId = ONCALL) {
  const reply = await teamsSay(app, connector, text, aadObjectId);
  return JSON.stringify(reply.body.attachments?.[0]?.content ?? reply.body);
}

describe('Teams: the same commands as messages to the bot', () => {
  it('help, and a private specific error for garbage', async () => {
    expect(await say('help')).toContain('contain <agent>');
    const garbage = await say('frobnicate teams-bot');
    expect(garbage).toContain('unknown command');
    expect(garbage).toContain('Usage');
  });

  it('contain with authorization; the agent is denied right after', async () => {
    const refused = await say('contain teams-bot not allowed', STRANGER);
    expect(refused).toContain('contain needs one of these roles: security-oncall');
    expect((await app.call('POST', '/v1/decisions', { agentId: 'teams-bot', action: 'crm:write' })).body.decision).toBe('allow');
    const ok = await say('<at>Armalo</at> contain teams-bot suspicious tool calls');
    expect(ok).toContain('Contained teams-bot');
    expect((await app.call('POST', '/v1/decisions', { agentId: 'teams-bot', action: 'crm:write' })).body.decision).toBe('deny');
    expect(await say('status teams-bot')).toContain('is contained');
    // Restore needs a second person: the request is recorded, the agent stays contained.
    expect(await say('restore teams-bot false alarm')).toContain('a second person must confirm');
    expect((await app.call('POST', '/v1/decisions', { agentId: 'teams-bot', action: 'crm:write' })).body.decision).toBe('deny');
    const confirmation = await app.db.selectFrom('confirmations').select('id').where('agent_id', '=', 'teams-bot').executeTakeFirstOrThrow();
    const reply = await app.commands.confirm({ platform: 'teams', userId: ONCALL2, emails: [] }, confirmation.id);
    expect(reply.title).toContain('Restored teams-bot');
    const audit = (await app.call('GET', '/v1/audit?agentId=teams-bot&limit=2')).body.entries;
    expect(audit.map((e: any) => e.actor)).toEqual([`teams:${ONCALL2}`, `teams:${ONCALL}`]);
  });

  it('in a channel, an error goes to the person privately when the bot has a chat with them', async () => {
    await say('help', STRANGER); // the stranger's personal chat with the bot is now known
    const CHANNEL = '19:general@thread.tacv2';
    const before = connector.calls.length;
    const activity = teamsMessage(connector.url, { text: '<at>Armalo</at> contain teams-bot not mine to do', aadObjectId: STRANGER, conversationId: CHANNEL, conversationType: 'channel' });
    await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(activity) });
    await waitFor(() => connector.calls.length >= before + 2, 5000, 'the private answer and the channel note');
    const recent = connector.calls.slice(before);
    const privateAnswer = recent.find((c) => c.conversationId === `a:personal-${STRANGER}`)!;
    expect(JSON.stringify(privateAnswer.body)).toContain('contain needs one of these roles');
    const inChannel = recent.filter((c) => c.conversationId === CHANNEL);
    expect(inChannel.map((c) => c.body.text)).toEqual(['I answered you in our private chat.']);
  });

  it('refuses a malformed activity with 400', async () => {
    const res = await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":' });
    expect(res.status).toBe(400);
  });
});

describe('Teams incident notices', () => {
  const CHANNEL = '19:incidents@thread.tacv2';

  it('once the bot is in the incidents channel, a contain posts a notice there, later steps go to its thread and it is updated in place', async () => {
    // The bot is added to the team: Teams sends a conversationUpdate from the channel.
    const install = {
      type: 'conversationUpdate',
      id: `cu-${Date.now()}`,
      serviceUrl: connector.url,
      channelId: 'msteams',
      from: { id: '29:admin', aadObjectId: ONCALL },
      conversation: { id: CHANNEL, conversationType: 'channel', isGroup: true, tenantId: 'tenant-1' },
      recipient: { id: '28:armalo-bot', name: 'Armalo' },
      membersAdded: [{ id: '28:armalo-bot' }],
      channelData: { team: { id: '19:team@thread.tacv2' }, channel: { id: CHANNEL }, tenant: { id: 'tenant-1' } },
    };
    const res = await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(install) });
    expect(res.status).toBeLessThan(300);
    await waitFor(async () => (await app.db.selectFrom('teams_conversations').select('kind').where('conversation_id', '=', CHANNEL).executeTakeFirst()) !== undefined, 3000, 'the channel reference');

    await app.call('PUT', '/v1/agents/notice-bot', sampleAgent);
    connector.failNext({ status: 429, retryAfter: 1, conversationId: CHANNEL });
    expect(await say('contain notice-bot exfiltration suspected')).toContain('Contained notice-bot');
    // Only this agent's notices: the earlier test's incident (teams-bot, before the bot was in the
    // channel) may reach the channel too once it is known, in either order.
    const ours = () => connector.sent(CHANNEL).filter((c) => c.method === 'POST' && JSON.stringify(c.body).includes('notice-bot'));
    await waitFor(() => ours().length > 0, 8000, 'the notice in the channel');
    const roots = ours();
    expect(roots).toHaveLength(1);
    expect(JSON.stringify(roots[0]!.body)).toContain('notice-bot');
    expect(JSON.stringify(roots[0]!.body)).toContain('CONTAINED');
    // The first post was throttled (429, Retry-After: 1); the notice still arrived exactly once. From
    // then on the channel's posts take turns, one a second (hence the longer waits below).
    expect(connector.calls.filter((c) => c.method === 'POST!failed' && c.conversationId === CHANNEL)).toHaveLength(1);

    expect(await say('narrow notice-bot payments:* also payments')).toContain('Narrowed notice-bot');
    const narrowReply = (c: { conversationId: string; body: any }) => c.conversationId.startsWith(`${CHANNEL};messageid=`) && /narrowed/i.test(JSON.stringify(c.body));
    await waitFor(() => connector.sent().some(narrowReply), 20_000, 'the thread reply');
    const reply = connector.sent().find(narrowReply)!;
    // Teams Markdown: the scope shows as payments:* (the star escaped, so it is not emphasis).
    expect(reply.body.text).toMatch(/narrowed `?payments:\\?\*`?/);
    await waitFor(() => connector.sent(CHANNEL).some((c) => c.method === 'PUT'), 20_000, 'the notice to be updated');
    expect(ours()).toHaveLength(1);

    // A second-person restore: the request is posted in the notice's thread with a Confirm button.
    expect(await say('restore notice-bot contained by mistake')).toContain('a second person must confirm');
    await waitFor(() => connector.sent().some((c) => c.conversationId.startsWith(`${CHANNEL};messageid=`) && JSON.stringify(c.body).includes('asks to restore')), 20_000, 'the confirmation request in the thread');
    const request = connector.sent().find((c) => JSON.stringify(c.body).includes('asks to restore'))!;
    const card = request.body.attachments[0].content;
    expect(card.actions[0].verb).toBe('armalo.confirm');
  });

  it('in a conversation Teams throttled, a later notice queues behind the refused one: posted in order, never refused itself', async () => {
    // The bot is already in the channel (the test above).
    await app.call('PUT', '/v1/agents/slow-teams-bot', sampleAgent);
    await app.call('PUT', '/v1/agents/fast-teams-bot', sampleAgent);
    const about = (c: { body: unknown }) => (JSON.stringify(c.body).includes('slow-teams-bot') ? 'slow' : JSON.stringify(c.body).includes('fast-teams-bot') ? 'fast' : undefined);
    connector.failNext({ status: 429, retryAfter: 3, conversationId: CHANNEL });
    expect(await say('contain slow-teams-bot first')).toContain('Contained slow-teams-bot');
    await waitFor(() => connector.calls.some((c) => c.method === 'POST!failed' && c.conversationId === CHANNEL && about(c) === 'slow'), 8000, 'the 429');
    expect(await say('contain fast-teams-bot second')).toContain('Contained fast-teams-bot');
    const roots = () => connector.sent(CHANNEL).filter((c) => c.method === 'POST' && about(c) !== undefined);
    await waitFor(() => roots().length === 2, 20_000, 'both notices after the Retry-After');
    // The refused one first (it waited its 3 s: the client did not retry it behind our back), then
    // the one that queued behind it.
    expect(roots().map(about)).toEqual(['slow', 'fast']);
    const refused = connector.calls.filter((c) => c.method === 'POST!failed' && c.conversationId === CHANNEL && about(c) === 'slow');
    expect(refused).toHaveLength(1);
    expect(roots()[0]!.at - refused[0]!.at).toBeGreaterThanOrEqual(3000);
    // The later notice never went to Teams before its turn, so it was never refused.
    expect(connector.calls.filter((c) => c.method === 'POST!failed' && about(c) === 'fast')).toEqual([]);
  });

  it('a 503 from the Bot Connector: the notice job tries again later and the notice arrives once', async () => {
    await app.call('PUT', '/v1/agents/flaky-teams-bot', sampleAgent);
    const about = (c: { body: unknown }) => JSON.stringify(c.body).includes('flaky-teams-bot');
    connector.failNext({ status: 503, conversationId: CHANNEL });
    expect(await say('contain flaky-teams-bot connector outage')).toContain('Contained flaky-teams-bot');
    await waitFor(() => connector.sent(CHANNEL).some((c) => c.method === 'POST' && about(c)), 15_000, 'the notice after the 503');
    const failed = connector.calls.filter((c) => c.method === 'POST!failed' && c.conversationId === CHANNEL && about(c));
    expect(failed).toHaveLength(1);
    expect(connector.sent(CHANNEL).filter((c) => c.method === 'POST' && about(c))).toHaveLength(1);
  });

  it('an invalid policy file is announced in the Teams incidents channel once, and changes nothing', async () => {
    const running = (await app.call('GET', '/readyz')).body.policyHash as string;
    writeFileSync(policyFile, POLICY.replace('  contain: [security-oncall]', '  contain: [no-such-role]'));
    expect((await app.reloadPolicy()).outcome).toBe('rejected');
    const invalid = () => connector.sent(CHANNEL).filter((c) => c.method === 'POST' && JSON.stringify(c.body).includes('is **invalid**'));
    await waitFor(() => invalid().length === 1, 8000, 'the invalid-policy notice in Teams');
    expect(JSON.stringify(invalid()[0]!.body)).toContain('no-such-role');
    expect((await app.reloadPolicy()).outcome).toBe('rejected');
    expect((await app.call('GET', '/readyz')).body.policyHash).toBe(running);
    writeFileSync(policyFile, POLICY);
    expect((await app.reloadPolicy()).outcome).not.toBe('rejected');
    expect(invalid()).toHaveLength(1);
  });
});

describe('Teams score notices', () => {
  it('a channel that subscribes gets tier changes', async () => {
    const CHANNEL = '19:incidents@thread.tacv2';
    // Typed in the channel (the bot is mentioned there): the subscription is for that conversation.
    const activity = teamsMessage(connector.url, { text: '<at>Armalo</at> subscribe teams-bot scores', aadObjectId: ONCALL, conversationId: CHANNEL, conversationType: 'channel' });
    await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(activity) });
    await waitFor(async () => (await app.db.selectFrom('subscriptions').select('channel').where('platform', '=', 'teams').execute()).length === 1, 3000, 'the subscription');
    const { signPayload } = await import('../src/webhooks/signature.js');
    const body = JSON.stringify({ id: 'teams-tier-1', type: 'score.tier_changed', createdAt: new Date().toISOString(), data: { agentId: 'teams-bot', tier: 'silver', score: 600 } });
    await fetch(`${app.url}/webhooks/armalo`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-armalo-signature': signPayload(SECRET, body, Math.floor(Date.now() / 1000)) }, body });
    await waitFor(() => connector.sent(CHANNEL).some((c) => c.method === 'POST' && String(c.body?.text).includes('tier none → silver')), 5000, 'the tier notice in Teams');
  });
});

describe('Teams two-step revoke', () => {
  async function execute(aad: string, verb: string, data: Record<string, unknown>) {
    const res = await cardAction(app, connector, aad, verb, data);
    expect(res.status).toBe(200);
    return JSON.stringify((JSON.parse(res.text) as any).value);
  }

  it('asks for confirmation with a button only the requester can use', async () => {
    await app.call('PUT', '/v1/agents/kill-teams-bot', sampleAgent);
    const asked = await say('revoke kill-teams-bot leaked key');
    expect(asked).toContain('armalo.confirm');
    const id = JSON.parse(asked).actions[0].data.confirmationId as string;
    expect((await app.call('POST', '/v1/decisions', { agentId: 'kill-teams-bot', action: 'mail:send' })).body.decision).toBe('allow');
    expect(await execute(STRANGER, 'armalo.confirm', { confirmationId: id })).toContain('Only the person who asked');
    expect(await execute(ONCALL, 'armalo.confirm', { confirmationId: id })).toContain('Revoked kill-teams-bot');
    expect((await app.call('POST', '/v1/decisions', { agentId: 'kill-teams-bot', action: 'mail:send' })).body.decision).toBe('deny');
  });
});

