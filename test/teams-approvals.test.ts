import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { cardAction } from './support/drive.js';
import { type FakeConnector, teamsMessage } from './support/fake-connector.js';
import type { FakeSlack } from './support/fake-slack.js';
import { postSigned } from './support/slack-requests.js';

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
let app: TestApp;
let connector: FakeConnector;
let slack: FakeSlack;
let n = 0;

const it = appTest({ policy: POLICY, slack: true, teams: true, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, slack: fakeSlack, connector: fakeConnector }) => {
  app = started;
  slack = fakeSlack;
  connector = fakeConnector;
  await app.call('PUT', '/v1/agents/pay-bot', { ...sampleAgent, owner: 'owner@example.com', grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 100_000 } }] });
  // The CISO has talked to the bot once: their personal chat is known.
  await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(teamsMessage(connector.url, { text: 'help', aadObjectId: CISO })) });
  await waitFor(async () => (await app.db.selectFrom('teams_conversations').select('kind').where('aad_object_id', '=', CISO).executeTakeFirst()) !== undefined, 3000, 'the personal chat');
});

async function execute(aad: string, verb: string, data: Record<string, unknown>) {
  const { status, text } = await cardAction(app, connector, aad, verb, data);
  expect(status, text).toBe(200);
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
