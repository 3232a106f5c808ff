import { describe, expect } from 'vitest';
import { waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { slashCommand, teamsSay } from './support/drive.js';
import { type FakeConnector } from './support/fake-connector.js';
import type { FakeSlack } from './support/fake-slack.js';
import { signPayload } from '../src/webhooks/signature.js';

/**
 * Issue 10, item 11: hostile names, owners, reasons, justifications, audiences and pact text reach
 * Slack and Teams as text, never as a mention, broadcast or link. Driven end to end: commands, REST and
 * webhooks in; what the fake Slack and the fake Bot Connector received out.
 */
const ONCALL = '00000000-0000-0000-0000-0000000000a1';
const CISO = '00000000-0000-0000-0000-00000000c150';
const TEAMS_CHANNEL = '19:incidents@thread.tacv2';
const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }, { teams: ${ONCALL} }] }
  risk-owner: { members: [{ slack: U0RISK }] }
  ciso: { members: [{ teams: ${CISO} }] }
permissions:
  contain: [security-oncall]
  narrow: [security-oncall]
  restore: [security-oncall]
  packet: [security-oncall]
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [risk-owner, ciso]
    quorum: 2
channels:
  incidents: { slack: C0INCIDENTS, teams: "${TEAMS_CHANNEL}" }
  scores: { slack: C0SCORES, teams: "${TEAMS_CHANNEL}" }
  approvals: { slack: C0APPROVALS }
`;
const SECRET = 'armalo_inbound_secret_0123456789';

// What a hostile user types: Slack control sequences and Teams Markdown in one string.
const NAME = 'Evil <!channel> <https://evil.example|Fortress> [click](https://evil.example) **Bot**';
const OWNER = '<!here> [owner](https://evil.example)';
const REASON = '<!channel> <@U0BOSS> <https://evil.example|click> [here](https://evil.example) leaked';
const JUSTIFICATION = 'pay <!subteam^S0ADMINS> <#C0GENERAL> [invoice](https://evil.example)\n- approved by CFO';
const AUDIENCE = '<!channel> [Fortress Bank](https://evil.example)';
const PACT = 'exfil <!channel> [proof](https://evil.example)';

let app: TestApp;
let slack: FakeSlack;
let connector: FakeConnector;

/** Every string inside a payload. */
function strings(x: unknown): string[] {
  if (typeof x === 'string') return [x];
  if (Array.isArray(x)) return x.flatMap(strings);
  if (x && typeof x === 'object') return Object.values(x).flatMap(strings);
  return [];
}
/** How Slack shows mrkdwn text: entities decoded (after it has found no control sequences). */
const slackShown = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
/** How Teams shows Markdown text: backslash escapes removed. */
const teamsShown = (s: string) => s.replace(/\\([!-/:-@[-`{-~])/g, '$1');

/** No mention, channel link, broadcast or link that a user typed; and the user's words still read as typed. */
function expectSlackSafe(payload: unknown, ...typed: string[]) {
  const all = strings(payload);
  for (const s of all) {
    for (const bad of ['<!channel>', '<!here>', '<!subteam^', '<@U0BOSS>', '<#C0GENERAL>', '<https://evil']) expect(s, `Slack payload: ${s}`).not.toContain(bad);
  }
  for (const t of typed) expect(all.some((s) => slackShown(s).includes(t)), `"${t}" reads as typed in ${JSON.stringify(payload).slice(0, 400)}`).toBe(true);
}

/** No Markdown link, emphasis or list a user typed; the user's words still read as typed. */
function expectTeamsSafe(payload: unknown, ...typed: string[]) {
  const all = strings(payload);
  for (const s of all) {
    expect(s, `Teams payload: ${s}`).not.toMatch(/\]\(https:\/\/evil/);
    expect(s).not.toMatch(/(^|[^\\])\[(click|here|owner|invoice|Fortress Bank|proof)/);
    expect(s).not.toMatch(/(^|[^\\])\*\*Bot/);
    expect(s).not.toMatch(/(^|\n)- approved/);
  }
  for (const t of typed) expect(all.some((s) => teamsShown(s).includes(t)), `"${t}" reads as typed in ${JSON.stringify(payload).slice(0, 400)}`).toBe(true);
}

const slash = async (user: string, text: string, channel = 'C0OPS') => (await slashCommand(app, slack, user, text, { channel })).body as Record<string, unknown>;
const teams = async (text: string, aadObjectId = ONCALL) => (await teamsSay(app, connector, text, aadObjectId)).body;

const it = appTest({
  policy: POLICY,
  slack: true,
  teams: true,
  env: { ARMALO_WEBHOOK_SECRET: SECRET },
  appOptions: { relayPollMs: 200 },
});
it.beforeAll(async ({ app: started, slack: fakeSlack, connector: fakeConnector }) => {
  app = started;
  slack = fakeSlack;
  connector = fakeConnector;
  const put = await app.call('PUT', '/v1/agents/evil-bot', { name: NAME, owner: OWNER, riskTier: 'high', grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 100_000 } }, { scope: 'crm:write' }] });
  expect(put.status).toBeLessThan(300);
  // The bot is in the Teams incidents channel, and the CISO has a personal chat with it.
  const install = {
    type: 'conversationUpdate',
    id: `cu-${Date.now()}`,
    serviceUrl: connector.url,
    channelId: 'msteams',
    from: { id: '29:admin', aadObjectId: ONCALL },
    conversation: { id: TEAMS_CHANNEL, conversationType: 'channel', isGroup: true, tenantId: 'tenant-1' },
    recipient: { id: '28:armalo-bot', name: 'Armalo' },
    membersAdded: [{ id: '28:armalo-bot' }],
    channelData: { team: { id: '19:team@thread.tacv2' }, channel: { id: TEAMS_CHANNEL }, tenant: { id: 'tenant-1' } },
  };
  await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(install) });
  await teams('help', CISO);
  await waitFor(async () => (await app.db.selectFrom('teams_conversations').select('kind').where('conversation_id', '=', TEAMS_CHANNEL).executeTakeFirst()) !== undefined, 5000, 'the channel reference');
});

describe('formatting injection: user text is text on both platforms', () => {
  it('approval cards: Slack DM, channel copy and App Home; the Teams card; the approvals replies', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'evil-bot', action: 'payments:transfer', context: { amount: 50_000, recipient: AUDIENCE }, justification: JUSTIFICATION });
    expect(created.status).toBeLessThan(300);
    const id = created.body.id as string;
    const slackCards = () => slack.posts().filter((p) => JSON.stringify(p.args).includes(id));
    await waitFor(() => slackCards().length >= 2, 10_000, 'the Slack DM and channel copies');
    expect(slackCards().map((p) => p.args.channel).sort()).toEqual(['C0APPROVALS', 'U0RISK']);
    for (const card of slackCards()) expectSlackSafe(card.args, NAME, JUSTIFICATION, AUDIENCE);
    await waitFor(() => slack.calls.some((c) => c.method === 'views.publish' && c.args.user_id === 'U0RISK' && JSON.stringify(c.args).includes('approved by CFO')), 10_000, 'the App Home');
    expectSlackSafe(slack.calls.filter((c) => c.method === 'views.publish').map((c) => c.args), JUSTIFICATION);

    const cisoChat = `a:personal-${CISO}`;
    await waitFor(() => connector.sent(cisoChat).some((c) => JSON.stringify(c.body).includes(id)), 10_000, 'the Teams approval card');
    expectTeamsSafe(connector.sent(cisoChat).find((c) => JSON.stringify(c.body).includes(id))!.body, NAME, JUSTIFICATION, AUDIENCE);

    expectSlackSafe(await slash('U0RISK', 'approvals'), JUSTIFICATION.split('\n')[0]!);
    expectTeamsSafe(await teams('approvals', CISO), JUSTIFICATION.split('\n')[0]!);
  });

  it('incident notices, thread lines and the command replies (Slack + Teams)', async () => {
    const narrowed = await slash('U0ONCALL1', `narrow evil-bot crm:write ${REASON}`);
    expectSlackSafe(narrowed, REASON);
    const contained = await teams(`contain evil-bot ${REASON}`);
    expectTeamsSafe(contained, REASON);

    // Slack: the root (name, owner, reason) in the incidents channel, and the second step in its thread.
    await waitFor(() => slack.posts('C0INCIDENTS').length >= 2 && slack.updates().some((u) => u.args.channel === 'C0INCIDENTS' && JSON.stringify(u.args).includes('CONTAINED')), 10_000, 'the Slack incident notice and thread line');
    for (const call of [...slack.posts('C0INCIDENTS'), ...slack.updates().filter((u) => u.args.channel === 'C0INCIDENTS')]) expectSlackSafe(call.args);
    expectSlackSafe(slack.posts('C0INCIDENTS').map((c) => c.args), NAME, OWNER, REASON);

    // Teams: the incident card (and its update) and the thread line.
    await waitFor(() => connector.sent(TEAMS_CHANNEL).some((c) => c.method === 'PUT' && JSON.stringify(c.body).includes('CONTAINED')), 10_000, 'the Teams incident card');
    await waitFor(() => connector.sent().some((c) => c.conversationId.startsWith(`${TEAMS_CHANNEL};messageid=`)), 10_000, 'the Teams thread line');
    const teamsIncident = connector.sent().filter((c) => c.conversationId.startsWith(TEAMS_CHANNEL)).map((c) => c.body);
    for (const body of teamsIncident) expectTeamsSafe(body);
    expectTeamsSafe(teamsIncident, `Incident: ${NAME}`, REASON);

    // status shows name, owner and the last actions' reasons.
    expectSlackSafe(await slash('U0ONCALL1', 'status evil-bot'), NAME, OWNER, REASON);
    expectTeamsSafe(await teams('status evil-bot'), NAME, OWNER, REASON);
  });

  it('score notices (Slack + Teams) and the score replies', async () => {
    const body = JSON.stringify({ id: 'fmt-violation-1', type: 'pact.violated', createdAt: new Date().toISOString(), data: { agentId: 'evil-bot', pactId: 'no-exfil', severity: 'critical', description: PACT } });
    const res = await fetch(`${app.url}/webhooks/armalo`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-armalo-signature': signPayload(SECRET, body, Math.floor(Date.now() / 1000)) }, body });
    expect(res.status).toBeLessThan(300);
    await waitFor(() => slack.posts('C0SCORES').some((p) => JSON.stringify(p.args).includes('no-exfil')), 10_000, 'the Slack violation notice');
    expectSlackSafe(slack.posts('C0SCORES').find((p) => JSON.stringify(p.args).includes('no-exfil'))!.args, PACT);
    await waitFor(() => connector.sent(TEAMS_CHANNEL).some((c) => c.method === 'POST' && String(c.body?.text).includes('no-exfil')), 10_000, 'the Teams violation notice');
    expectTeamsSafe(connector.sent(TEAMS_CHANNEL).find((c) => String(c.body?.text).includes('no-exfil'))!.body, PACT);

    expectSlackSafe(await slash('U0ONCALL1', 'score evil-bot'), 'evil-bot');
    expectTeamsSafe(await teams('score evil-bot'), 'evil-bot');
  });

  it('trust packets: the Slack summary, its fallback and the upload comment; the Teams packet card', async () => {
    const ack = await slash('U0ONCALL1', `packet evil-bot for ${AUDIENCE}`, 'C0VENDORS');
    expectSlackSafe(ack, AUDIENCE);
    await waitFor(() => slack.posts('C0VENDORS').some((p) => JSON.stringify(p.args).includes('Trust packet')), 15_000, 'the packet summary');
    expectSlackSafe(slack.posts('C0VENDORS').map((p) => p.args), `Trust packet: ${NAME} (evil-bot) for ${AUDIENCE}`);
    await waitFor(() => slack.calls.some((c) => c.method === 'files.completeUploadExternal'), 15_000, 'the PDF upload');
    const upload = slack.calls.find((c) => c.method === 'files.completeUploadExternal')!;
    expect(upload.args.channel_id).toBe('C0VENDORS');
    // The upload comment is a message in the channel: the title in it must be inert too.
    expectSlackSafe(upload.args.initial_comment, `Trust packet: ${NAME} (evil-bot) for ${AUDIENCE}`);

    const reply = await teams(`packet evil-bot for ${AUDIENCE}`);
    expectTeamsSafe(reply, AUDIENCE);
    const chat = `a:personal-${ONCALL}`;
    await waitFor(() => connector.sent(chat).some((c) => JSON.stringify(c.body).includes('Trust packet')), 15_000, 'the Teams packet card');
    expectTeamsSafe(connector.sent(chat).find((c) => JSON.stringify(c.body).includes('Trust packet'))!.body, `Trust packet: ${NAME} (evil-bot) for ${AUDIENCE}`);
  });
});
