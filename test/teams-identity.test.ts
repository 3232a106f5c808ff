import { describe, expect } from 'vitest';
import { sql } from 'kysely';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { cardAction } from './support/drive.js';
import { type FakeConnector, teamsMessage } from './support/fake-connector.js';

/**
 * Teams people listed in the policy only by email: the bot asks the Teams roster for the sender's
 * email (through the real adapter, against the fake Bot Connector) and recognises them, for commands,
 * approval cards and confirmation buttons alike; the roster is asked once an hour, not per message.
 */

const RESPONDER = '00000000-0000-0000-0000-0000000000e1';
const APPROVER = '00000000-0000-0000-0000-0000000000e2';
const STRANGER = '00000000-0000-0000-0000-0000000000e3';
const UNLUCKY = '00000000-0000-0000-0000-0000000000e4';
const WARMUP = '00000000-0000-0000-0000-0000000000e5';
const POLICY = `
roles:
  responder: { members: [{ email: responder@example.com }, { email: unlucky@example.com }] }
  ciso: { members: [{ email: ciso@example.com }] }
permissions:
  contain: [responder]
  narrow: [responder]
  revoke: [responder]
  restore: { roles: [responder] }
routing:
  - id: transfers
    match: { action: "payments:*" }
    approvers: [ciso]
`;
let app: TestApp;
let connector: FakeConnector;

const it = appTest({ policy: POLICY, teams: true, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, connector: fakeConnector }) => {
  app = started;
  connector = fakeConnector;
  // Teams gives the email in either field; case does not matter.
  connector.setMember(RESPONDER, { email: 'Responder@Example.com', name: 'Rae' });
  connector.setMember(APPROVER, { userPrincipalName: 'ciso@example.com', name: 'Cy' });
  connector.setMember(STRANGER, { email: 'stranger@example.com', name: 'Sam' });
  connector.setMember(UNLUCKY, { email: 'unlucky@example.com', name: 'Una' });
  for (const id of ['id-bot-1', 'id-bot-2', 'id-bot-3', 'id-pay']) {
    expect((await app.call('PUT', `/v1/agents/${id}`, sampleAgent)).status).toBeLessThan(300);
  }
  // The first activity loads the Teams SDK (seconds on a busy machine): done here, not inside a test.
  expect(await say(WARMUP, 'help')).toContain('contain <agent>');
}, 90_000);

/** Sends a message to the bot in the person's personal chat; returns the answer card as text. */
async function say(aadObjectId: string, text: string): Promise<string> {
  const activity = teamsMessage(connector.url, { text, aadObjectId });
  const res = await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(activity) });
  expect(res.status).toBeLessThan(300);
  await waitFor(() => connector.sent(activity.conversation.id).some((c) => c.body?.replyToId === activity.id), 60_000, `the answer to "${text}"`);
  return JSON.stringify(connector.sent(activity.conversation.id).find((c) => c.body?.replyToId === activity.id)!.body);
}

/** A click on an Action.Execute button; returns the card the invoke answers with, as text. */
async function click(aad: string, verb: string, data: Record<string, unknown>): Promise<string> {
  const res = await cardAction(app, connector, aad, verb, data);
  expect(res.status, res.text).toBe(200);
  return JSON.stringify((JSON.parse(res.text) as any).value);
}

const statusOf = async (agentId: string) => (await app.call('GET', `/v1/agents/${agentId}`)).body.status as string;

describe('Teams: people listed in the policy by email', () => {
  it('a responder listed only by email contains an agent from Teams; the roster is asked once an hour, not per message', async () => {
    const answer = await say(RESPONDER, 'contain id-bot-1 leaked key');
    expect(answer).toContain('Contained id-bot-1');
    expect(await statusOf('id-bot-1')).toBe('contained');
    const audit = (await app.call('GET', '/v1/audit?agentId=id-bot-1')).body.entries as { actor: string; action: string }[];
    expect(audit.filter((e) => e.actor === `teams:${RESPONDER}`).length).toBeGreaterThan(0);
    expect(connector.rosterLookups(RESPONDER)).toHaveLength(1);

    // More messages within the hour: the cached email, no roster call.
    expect(await say(RESPONDER, 'status id-bot-1')).toContain('contained');
    expect(await say(RESPONDER, 'narrow id-bot-2 crm:write')).toContain('Narrowed id-bot-2');
    expect(connector.rosterLookups(RESPONDER)).toHaveLength(1);

    // An hour later the roster is asked again, once.
    await sql`update chat_identities set resolved_at = now() - interval '61 minutes' where platform = 'teams' and user_id = ${RESPONDER}`.execute(app.db);
    expect(await say(RESPONDER, 'status id-bot-2')).toContain('narrowed');
    expect(await say(RESPONDER, 'status id-bot-2')).toContain('narrowed');
    expect(connector.rosterLookups(RESPONDER)).toHaveLength(2);
  });

  it('someone whose roster email is not in the policy is refused, and nothing changes', async () => {
    const answer = await say(STRANGER, 'contain id-bot-3 because');
    expect(answer).toContain('Not allowed');
    expect(await statusOf('id-bot-3')).toBe('active');
    expect(connector.rosterLookups(STRANGER)).toHaveLength(1);
  });

  it('an approver listed only by email approves a card from Teams', async () => {
    const created = await app.call('POST', '/v1/approval-requests', { agentId: 'id-pay', action: 'payments:transfer', context: { amount: 50 }, justification: 'supplier invoice' });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    // Someone else with a roster email is not on the route.
    expect(await click(STRANGER, 'armalo.approve', { requestId: id })).toContain("not on this request's route");
    const card = await click(APPROVER, 'armalo.approve', { requestId: id });
    expect(card).toContain('APPROVED');
    const view = (await app.call('GET', `/v1/approval-requests/${id}`)).body;
    expect(view.status).toBe('approved');
    expect(view.decisions.map((d: any) => [d.via, d.decision])).toEqual([['teams', 'approve']]);
  });

  it('the confirmation button of a revoke recognises its requester by email too', async () => {
    const asked = await say(RESPONDER, 'revoke id-bot-3 compromised');
    const confirmationId = /"confirmationId":"([^"]+)"/.exec(asked)?.[1];
    expect(confirmationId, asked).toBeDefined();
    expect(await click(RESPONDER, 'armalo.confirm', { confirmationId })).toContain('id-bot-3');
    await waitFor(async () => (await statusOf('id-bot-3')) === 'revoked', 5000, 'the revoke');
  });

  it('a roster failure never fails the command: the person is known by Teams id only, and the failure is logged', async () => {
    // A refusal (the bot was removed from the chat, say); a 5xx is retried by the Bot Framework client first.
    connector.failRoster(1, 403);
    const answer = await say(UNLUCKY, 'contain id-bot-3 once more');
    expect(answer).toContain('Not allowed');
    expect(answer).not.toContain('went wrong');
    expect(app.logs.text()).toContain('Teams roster lookup failed');
    // Not asked again at once: a failing roster is not hammered message after message.
    expect(await say(UNLUCKY, 'status id-bot-3')).toContain('role');
    expect(connector.rosterLookups(UNLUCKY)).toHaveLength(1);
  });
});
