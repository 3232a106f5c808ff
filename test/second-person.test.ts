import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { cardAction, clickButton, decisionOf, slashCommand, textOf } from './support/drive.js';
import type { FakeSlack } from './support/fake-slack.js';
import type { FakeConnector } from './support/fake-connector.js';
import { ConfirmationService } from '../src/confirmations/confirmations.service.js';
import { systemClock } from '../src/core/clock.js';

// Issue 10, items 5 and 7: the second person of a restore is a different PERSON (not a different
// actor string), and a confirmation is good for the incident it was asked about only.
const ALICE_AAD = '00000000-0000-0000-0000-0000000a11ce';
const BOB_AAD = '00000000-0000-0000-0000-000000000b0b';
const DAVE_AAD = '00000000-0000-0000-0000-00000000da7e';
const CAROL_AAD = '00000000-0000-0000-0000-0000000ca201';
const POLICY = `
roles:
  security-oncall:
    members:
      - { slack: U0ALICE, teams: "${ALICE_AAD}", email: alice@example.com }
      - { slack: U0BOB, teams: "${BOB_AAD}" }
      - { slack: U0DAVE }
  ciso:
    members:
      - { email: dave@example.com, teams: "${DAVE_AAD}" }
      - { email: carol@example.com, teams: "${CAROL_AAD}" }
permissions:
  contain: [security-oncall, ciso]
  narrow: [security-oncall, ciso]
  revoke: [ciso]
  restore: { roles: [security-oncall, ciso], secondPerson: true }
channels:
  incidents: { slack: C0INCIDENTS }
`;

let app: TestApp;
let slack: FakeSlack;
let connector: FakeConnector;

// Dave is listed twice: by Slack id in one role, by email + Teams id in another. Only Slack's
// directory (users.lookupByEmail) ties the two entries together.
const it = appTest({
  policy: POLICY,
  slack: true,
  slackUsers: { 'dave@example.com': 'U0DAVE' },
  teams: true,
  appOptions: { relayPollMs: 200 },
});
it.beforeAll(({ app: started, slack: fakeSlack, connector: fakeConnector }) => {
  app = started;
  slack = fakeSlack;
  connector = fakeConnector;
});

/** `/armalo <text>` from a Slack user; the private answer. */
const slash = async (user: string, text: string): Promise<string> => textOf((await slashCommand(app, slack, user, text)).body);

/** A click on a Slack button; the answer Slack gets through response_url. */
const slackClick = async (user: string, actionId: string, value: string): Promise<string> => textOf(await clickButton(app, slack, user, actionId, value));

/** A click on a Teams card button (Universal Actions invoke) through the real Teams adapter; the card it answers with. */
async function teamsClick(aad: string, verb: string, data: Record<string, unknown>): Promise<string> {
  const res = await cardAction(app, connector, aad, verb, data);
  expect(res.status).toBe(200);
  return JSON.stringify((JSON.parse(res.text) as { value: unknown }).value);
}

const decision = async (agentId: string): Promise<string> => (await decisionOf(app, agentId, 'crm:write')).decision;

/** The id on the Confirm button of the newest confirmation request posted in the Slack incidents channel for this agent. */
async function postedConfirmation(agentId: string, already: Set<string> = new Set()): Promise<string> {
  const find = () =>
    slack
      .posts('C0INCIDENTS')
      .filter((p) => textOf(p.args).includes('asks to restore') && textOf(p.args).includes(agentId))
      .map((p) => ((p.args.blocks as { type: string; elements?: { value: string }[] }[]).find((b) => b.type === 'actions')!.elements![0]!.value))
      .find((id) => !already.has(id));
  await waitFor(() => find() !== undefined, 5000, `the confirmation request for ${agentId}`);
  return find()!;
}

/** The last update of the message that asked for this confirmation (undefined until there is one). */
function updatedConfirmation(id: string): string | undefined {
  const updates = slack.calls.filter((c) => c.method === 'chat.update' && textOf(c.args).includes(`confirmation ${id}`));
  return updates.length ? textOf(updates[updates.length - 1]!.args) : undefined;
}

/** A confirmation as the service reports it (the same view GET /v1/confirmations/{id} answers with). */
async function confirmation(id: string) {
  return (await new ConfirmationService({ db: app.db, clock: systemClock, policy: app.policy, agents: app.agents }).get(id))!;
}

describe('second-person restore compares people, not platforms', () => {
  it('a member who asked in Slack cannot confirm from Teams; a different member can', async () => {
    await app.call('PUT', '/v1/agents/sp-bot', sampleAgent);
    expect(await slash('U0ALICE', 'contain sp-bot odd tool calls')).toContain('Contained sp-bot');
    expect(await slash('U0ALICE', 'restore sp-bot false alarm')).toContain('a second person must confirm');
    const id = await postedConfirmation('sp-bot');

    // Same policy member (slack U0ALICE = teams ALICE_AAD), other platform: refused, nothing changes.
    const self = await teamsClick(ALICE_AAD, 'armalo.confirm', { confirmationId: id });
    expect(self).toContain('A second person must confirm this restore; you asked for it');
    expect(await decision('sp-bot')).toBe('deny');
    expect((await confirmation(id)).status).toBe('pending');

    const other = await teamsClick(BOB_AAD, 'armalo.confirm', { confirmationId: id });
    expect(other).toContain('Restored sp-bot');
    expect(await decision('sp-bot')).toBe('allow');
    const audit = await app.call('GET', '/v1/audit?agentId=sp-bot&limit=1');
    expect(audit.body.entries[0]).toMatchObject({ action: 'agent.restore', actor: `teams:${BOB_AAD}` });
    expect(audit.body.entries[0].payload.action.reason).toContain('requested by slack:U0ALICE');
  });

  it('two member entries tied by a resolved email are one person: asking in Slack and confirming in Teams is refused', async () => {
    // The directory job resolves policy emails to Slack users at start.
    await waitFor(async () => (await app.db.selectFrom('chat_identities').select('user_id').where('email', '=', 'dave@example.com').executeTakeFirst())?.user_id === 'U0DAVE', 5000, 'dave resolved in Slack');
    await app.call('PUT', '/v1/agents/email-bot', sampleAgent);
    expect(await slash('U0DAVE', 'contain email-bot leaked token')).toContain('Contained email-bot');
    expect(await slash('U0DAVE', 'restore email-bot token rotated')).toContain('a second person must confirm');
    const id = await postedConfirmation('email-bot');

    expect(await teamsClick(DAVE_AAD, 'armalo.confirm', { confirmationId: id })).toContain('A second person must confirm');
    expect(await decision('email-bot')).toBe('deny');
    // Cancel is the requester's: Dave may cancel from Teams, Carol may not.
    expect(await teamsClick(CAROL_AAD, 'armalo.cancel', { confirmationId: id })).toContain('Only the person who asked can cancel');

    expect(await teamsClick(CAROL_AAD, 'armalo.confirm', { confirmationId: id })).toContain('Restored email-bot');
    expect(await decision('email-bot')).toBe('allow');
  });
});

describe('a restore confirmation is bound to its incident', () => {
  it('after incident A ended by ttl and incident B began, a click on the confirmation from A is refused and the agent stays contained', async () => {
    await app.call('PUT', '/v1/agents/old-bot', sampleAgent);
    expect(await slash('U0ALICE', 'contain old-bot --ttl 1h suspicious')).toContain('Contained old-bot');
    const incidentA = (await app.db.selectFrom('incidents').select('id').where('agent_id', '=', 'old-bot').where('status', '=', 'open').executeTakeFirstOrThrow()).id;
    expect(await slash('U0ALICE', 'restore old-bot looks fine')).toContain('a second person must confirm');
    const id = await postedConfirmation('old-bot');

    // Incident A ends when its ttl runs out (the lift job's use case, run now instead of in an hour).
    const action = await app.db.selectFrom('agent_actions').select('id').where('agent_id', '=', 'old-bot').where('lifted_at', 'is', null).executeTakeFirstOrThrow();
    await app.db.updateTable('agent_actions').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', action.id).execute();
    expect(await app.agents.liftExpired(action.id, 'old-bot')).toBe('lifted');
    const ended = await confirmation(id);
    expect(ended).toMatchObject({ status: 'cancelled', incidentId: incidentA, reason: `incident ${incidentA} ended` });
    // The request in the thread loses its buttons and says why, so nobody clicks a dead button.
    await waitFor(() => updatedConfirmation(id) !== undefined, 5000, 'the cancelled confirmation to be updated in the thread');
    const shown = updatedConfirmation(id)!;
    expect(shown).not.toContain('armalo_confirm');
    expect(shown).toContain(`incident ${incidentA} ended`);

    // Incident B: contained again.
    expect(await slash('U0BOB', 'contain old-bot it is back')).toContain('Contained old-bot');
    expect(await decision('old-bot')).toBe('deny');

    const late = await slackClick('U0BOB', 'armalo_confirm', id);
    expect(late).toContain(`This confirmation was for incident ${incidentA}, which has ended`);
    expect(await decision('old-bot')).toBe('deny');
    expect((await app.call('GET', '/v1/agents/old-bot')).body.status).toBe('contained');
  });

  it('an incident ended by another restore cancels the other open restore confirmations; a later click changes nothing', async () => {
    await app.call('PUT', '/v1/agents/twice-bot', sampleAgent);
    expect(await slash('U0ALICE', 'contain twice-bot odd')).toContain('Contained twice-bot');
    expect(await slash('U0ALICE', 'restore twice-bot alice says fine')).toContain('a second person must confirm');
    const fromAlice = await postedConfirmation('twice-bot');
    expect(await slash('U0BOB', 'restore twice-bot bob says fine')).toContain('a second person must confirm');
    const fromBob = await postedConfirmation('twice-bot', new Set([fromAlice]));

    expect(await slackClick('U0ALICE', 'armalo_confirm', fromBob)).toContain('Restored twice-bot');
    expect((await confirmation(fromAlice)).status).toBe('cancelled');
    // Both requests in the thread now show their outcome, without buttons.
    await waitFor(() => updatedConfirmation(fromBob) !== undefined && updatedConfirmation(fromAlice) !== undefined, 5000, 'both confirmations to be updated');
    expect(updatedConfirmation(fromBob)).toContain('Confirmed');
    expect(updatedConfirmation(fromAlice)).toContain('Cancelled');
    expect(updatedConfirmation(fromAlice)).not.toContain('armalo_confirm');
    expect(await slash('U0ALICE', 'contain twice-bot again')).toContain('Contained twice-bot');

    expect(await slackClick('U0BOB', 'armalo_confirm', fromAlice)).toContain('which has ended');
    expect(await decision('twice-bot')).toBe('deny');
  });

  it('a restriction added to the incident after the restore was asked makes the old confirmation refused', async () => {
    await app.call('PUT', '/v1/agents/more-bot', sampleAgent);
    expect(await slash('U0ALICE', 'narrow more-bot crm:write crm looks odd')).toContain('Narrowed more-bot');
    expect(await slash('U0ALICE', 'restore more-bot crm is fine')).toContain('a second person must confirm');
    const id = await postedConfirmation('more-bot');
    // New information in the same incident: contain.
    expect(await slash('U0BOB', 'contain more-bot exfiltration seen')).toContain('Contained more-bot');

    expect(await slackClick('U0BOB', 'armalo_confirm', id)).toContain('the incident changed after this restore was asked');
    expect((await app.call('GET', '/v1/agents/more-bot')).body.status).toBe('contained');
    expect((await confirmation(id)).status).toBe('pending');
  });
});
