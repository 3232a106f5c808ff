import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanRedisPrefix, sampleAgent, startTestApp, testConfig, waitFor, type TestApp } from './support/app.js';
import { createTestDatabase, testPrefix, type TestDatabase } from './support/database.js';
import { FakeConnector, teamsMessage } from './support/fake-connector.js';
import { FakeSlack } from './support/fake-slack.js';
import { postSigned, SIGNING_SECRET } from './support/slack-requests.js';
import { writePolicy } from './support/slack-policy.js';

const CISO = '00000000-0000-0000-0000-00000000c150';
const STRANGER = '00000000-0000-0000-0000-0000000000ff';
const POLICY = `
roles:
  risk-owner: { members: [{ slack: U0RISK }] }
  ciso: { members: [{ teams: ${CISO} }] }
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [risk-owner, ciso]
    quorum: 2
`;
let database: TestDatabase;
let app: TestApp;
const connector = new FakeConnector();
const slack = new FakeSlack();
const prefix = testPrefix();
let n = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  await connector.start();
  const apiUrl = await slack.start();
  app = await startTestApp(
    testConfig(database.url, prefix, { TEAMS_DEV_UNAUTHENTICATED: '1', SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_BOT_TOKEN: 'xoxb-test-token-0123456789', SLACK_API_URL: apiUrl, ARMALO_POLICY_FILE: writePolicy(POLICY) }),
    { relayPollMs: 200 },
  );
  await app.call('PUT', '/v1/agents/pay-bot', { ...sampleAgent, owner: 'owner@example.com', grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 100_000 } }] });
  // The CISO has talked to the bot once: their personal chat is known.
  await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(teamsMessage(connector.url, { text: 'help', aadObjectId: CISO })) });
  await waitFor(async () => (await app.db.selectFrom('teams_conversations').select('kind').where('aad_object_id', '=', CISO).executeTakeFirst()) !== undefined, 3000, 'the personal chat');
});

afterAll(async () => {
  await app?.stop();
  await connector.stop();
  await slack.stop();
  await database?.drop();
  await cleanRedisPrefix(prefix);
});

async function execute(aad: string, verb: string, data: Record<string, unknown>) {
  const activity = {
    type: 'invoke',
    name: 'adaptiveCard/action',
    id: `inv-${++n}`,
    // Teams sends the id of the card message the button is on.
    replyToId: 'act-card',
    serviceUrl: connector.url,
    channelId: 'msteams',
    from: { id: `29:${aad}`, aadObjectId: aad },
    conversation: { id: `a:personal-${aad}`, conversationType: 'personal', tenantId: 'tenant-1' },
    recipient: { id: '28:armalo-bot' },
    value: { action: { type: 'Action.Execute', verb, data }, trigger: 'manual' },
    channelData: { tenant: { id: 'tenant-1' } },
  };
  const res = await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(activity) });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  const body = JSON.parse(text) as any;
  expect(body.type).toBe('application/vnd.microsoft.card.adaptive');
  return JSON.stringify(body.value);
}

describe('one request, two platforms', () => {
  it('cards on Slack and Teams; a Teams approval updates the Slack card and a Slack approval the Teams card; quorum across platforms', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'pay-bot', action: 'payments:transfer', context: { amount: 50_000 }, justification: 'cross-platform' });
    const id = created.body.id as string;
    const teamsChat = `a:personal-${CISO}`;
    await waitFor(() => slack.posts('U0RISK').some((p) => JSON.stringify(p.args.blocks).includes(id)), 5000, 'the Slack card');
    await waitFor(() => connector.sent(teamsChat).some((c) => c.method === 'POST' && JSON.stringify(c.body).includes(id)), 5000, 'the Teams card');
    const teamsCard = JSON.stringify(connector.sent(teamsChat).find((c) => JSON.stringify(c.body).includes(id))!.body);
    expect(teamsCard).toContain('Action.Execute');
    expect(teamsCard).toContain('armalo.approve');
    expect(teamsCard).toContain('"userIds"');

    // Someone not on the route: a refusal card, nothing recorded.
    expect(await execute(STRANGER, 'armalo.approve', { requestId: id })).toContain("not on this request's route");
    expect((await app.call('GET', `/v1/approval-requests/${id}`)).body.decisions).toHaveLength(0);

    // A denial without a reason is refused in the card.
    expect(await execute(CISO, 'armalo.deny', { requestId: id, reason: ' ' })).toContain('needs a reason');

    const afterTeams = await execute(CISO, 'armalo.approve', { requestId: id });
    expect(afterTeams).toContain('1 of 2');
    await waitFor(() => slack.updates().some((u) => JSON.stringify(u.args.blocks).includes(id) && JSON.stringify(u.args.blocks).includes('1 of 2')), 5000, 'the Slack card to show the Teams approval');

    const click = new URLSearchParams({
      payload: JSON.stringify({ type: 'block_actions', user: { id: 'U0RISK' }, team: { id: 'T0TEAM' }, api_app_id: 'A0APP', token: 'x', trigger_id: `t-${++n}`, response_url: slack.responseUrl(`c${n}`), actions: [{ type: 'button', action_id: 'armalo_approve', value: id, block_id: 'b', action_ts: '1' }] }),
    }).toString();
    expect((await postSigned(app.url, click)).status).toBe(200);
    await waitFor(async () => (await app.call('GET', `/v1/approval-requests/${id}`)).body.status === 'approved', 5000, 'approval across platforms');
    const decisions = (await app.call('GET', `/v1/approval-requests/${id}`)).body.decisions;
    expect(decisions.map((d: any) => d.via).sort()).toEqual(['slack', 'teams']);
    await waitFor(() => connector.sent(teamsChat).some((c) => c.method === 'PUT' && JSON.stringify(c.body).includes('APPROVED')), 5000, 'the Teams card to show APPROVED');

    // An Execute on a decided request shows its final state.
    const late = await execute(CISO, 'armalo.approve', { requestId: id });
    expect(late).toContain('already approved');
    expect(late).toContain('APPROVED');
    expect(late).not.toContain('armalo.approve');
  });
});
