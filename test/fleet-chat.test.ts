import { describe, expect } from 'vitest';
import { waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { cardAction, clickButton, decisionOf, postActivity, slashCommand, teamsSay, textOf } from './support/drive.js';
import type { FakeSlack } from './support/fake-slack.js';
import { teamsMessage, type FakeConnector } from './support/fake-connector.js';

// Issue 17, item 3: containment by selector from Slack and Teams: the bulk permission, the dry run,
// the confirmation above permissions.bulk.confirmAbove, and a restore one second person confirms.
const ALICE_AAD = '00000000-0000-0000-0000-0000000a11ce';
const BOB_AAD = '00000000-0000-0000-0000-000000000b0b';
const POLICY = `
roles:
  security-oncall:
    members:
      - { slack: U0ALICE, teams: "${ALICE_AAD}" }
      - { slack: U0BOB, teams: "${BOB_AAD}" }
  responder:
    members:
      - { slack: U0CAROL }
permissions:
  contain: [security-oncall, responder]
  narrow: [security-oncall, responder]
  restore: { roles: [security-oncall], secondPerson: true }
  bulk: { roles: [security-oncall], confirmAbove: 3 }
channels:
  incidents: { slack: C0INCIDENTS }
`;

const it = appTest({ policy: POLICY, slack: true, teams: true, appOptions: { relayPollMs: 200 } });
let app: TestApp;
let slack: FakeSlack;
let connector: FakeConnector;

const agent = (owner: string, riskTier: string, scopes: string[]) => ({ name: 'Chat fleet agent', owner, riskTier, grants: scopes.map((scope) => ({ scope })) });
const status = async (id: string): Promise<string> => (await app.call('GET', `/v1/agents/${id}`)).body.status;
const fleetIncidents = async () => app.db.selectFrom('fleet_incidents').selectAll().orderBy('opened_at').execute();

/** `/armalo <text>` from a Slack user; the private answer as one string. */
const slash = async (user: string, text: string) => (await slashCommand(app, slack, user, text)).body;
const slackClick = async (user: string, actionId: string, value: string): Promise<string> => textOf(await clickButton(app, slack, user, actionId, value));
const confirmationIdOf = (body: any): string => ((body.blocks as any[]).find((b) => b.type === 'actions').elements[0].value as string);

async function teamsClick(aad: string, verb: string, data: Record<string, unknown>): Promise<string> {
  const res = await cardAction(app, connector, aad, verb, data);
  expect(res.status).toBe(200);
  return JSON.stringify((JSON.parse(res.text) as { value: unknown }).value);
}

it.beforeAll(async ({ app: started, slack: fakeSlack, connector: fakeConnector }) => {
  app = started;
  slack = fakeSlack;
  connector = fakeConnector;
  // Two agents of one vendor (small set), five mail agents of high risk (above the threshold of 3).
  const put = async (id: string, body: unknown) => expect((await app.call('PUT', `/v1/agents/${id}`, body)).status).toBe(201);
  const five = [1, 2, 3, 4, 5];
  await Promise.all([
    ...['ven-1', 'ven-2'].map((id) => put(id, agent('Vendor@Example.com', 'medium', ['vendor:api']))),
    ...five.map((i) => put(`mail-${i}`, agent(`team${i}@example.com`, 'high', ['mail:send', 'crm:read']))),
    ...five.map((i) => put(`tms-${i}`, agent(`tms${i}@example.com`, 'critical', ['tickets:write']))),
  ]);
});

describe('fleet commands in Slack', () => {
  it('refuses a person without a bulk role, and bad selectors, privately; nothing changes', async () => {
    const carol = textOf(await slash('U0CAROL', 'contain owner:vendor@example.com vendor breach'));
    expect(carol).toContain('Not allowed');
    expect(carol).toContain('act on a fleet by selector needs one of these roles: security-oncall');
    for (const [text, says] of [
      ['contain team:payments', 'unknown selector key'],
      ['contain scope:', 'needs a value'],
      ['contain scope:Pay!**', 'is not a scope glob'],
      ['contain risk:extreme', 'is not a risk tier'],
      ['contain scope:vendor:* owner:a@example.com scope:mail:*', 'given twice'],
      ['contain owner:vendor@example.com tier:high', 'unknown selector key'],
      ['narrow owner:vendor@example.com', 'narrow needs the scopes'],
      ['restore owner:vendor@example.com --break-glass because the pager is down for everyone', 'restores one agent'],
    ] as const) {
      expect(textOf(await slash('U0ALICE', text)), text).toContain(says);
    }
    expect(await fleetIncidents()).toHaveLength(0);
    expect(await status('ven-1')).toBe('active');
  });

  it('a dry run answers the count and a sample privately and changes nothing', async () => {
    const body = await slash('U0ALICE', 'contain risk:high scope:mail:* --dry-run mail vendor');
    const text = textOf(body);
    expect(text).toContain('Dry run: contain by selector scope:mail:* risk:high would change 5 agents');
    expect(text).toContain('mail-1');
    expect(await fleetIncidents()).toHaveLength(0);
    expect(await status('mail-1')).toBe('active');
  });

  it('at or under the threshold it applies at once, as one fleet incident with one notice', async () => {
    const text = textOf(await slash('U0ALICE', 'contain owner:vendor@example.com vendor breach'));
    expect(text).toContain('Contained 2 agents by selector owner:vendor@example.com');
    expect(await status('ven-1')).toBe('contained');
    expect((await decisionOf(app, 'ven-2', 'vendor:api')).decision).toBe('deny');
    const rows = await fleetIncidents();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: 'slack:U0ALICE', agent_count: 2, selector_key: 'owner:vendor@example.com' });
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => textOf(p.args).includes('owner:vendor@example.com')), 10_000, 'the fleet notice');
  });

  it('above the threshold it asks the same person, binds to the set, and a double click applies once', async () => {
    const asked = await slash('U0ALICE', 'contain risk:high scope:mail:* mail vendor compromised');
    expect(textOf(asked)).toContain('Contain 5 agents');
    expect(textOf(asked)).toContain('more than the policy');
    expect(await status('mail-1')).toBe('active');
    const id = confirmationIdOf(asked);

    // Somebody else cannot confirm it.
    expect(await slackClick('U0BOB', 'armalo_confirm', id)).toContain('Only the person who asked');
    expect(await status('mail-1')).toBe('active');

    const [a, b] = await Promise.all([slackClick('U0ALICE', 'armalo_confirm', id), slackClick('U0ALICE', 'armalo_confirm', id)]);
    expect([a, b].some((t) => t.includes('Contained 5 agents'))).toBe(true);
    for (let i = 1; i <= 5; i++) expect(await status(`mail-${i}`)).toBe('contained');
    const rows = (await fleetIncidents()).filter((r) => r.selector_key === 'scope:mail:* risk:high');
    expect(rows).toHaveLength(1);
    expect(await app.db.selectFrom('agent_actions').select('id').where('agent_id', '=', 'mail-3').where('kind', '=', 'contain').execute()).toHaveLength(1);
  });

  it('a confirmation whose set changed before the click is refused and changes nothing', async () => {
    const asked = await slash('U0ALICE', 'narrow risk:critical tickets:write ticket vendor');
    expect(textOf(asked)).toContain('Narrow 5 agents');
    const id = confirmationIdOf(asked);
    await app.call('PUT', '/v1/agents/tms-6', agent('tms6@example.com', 'critical', ['tickets:write']));
    const refused = await slackClick('U0ALICE', 'armalo_confirm', id);
    expect(refused).toContain('changed since this was asked (5 then, 6 now)');
    expect(refused).toContain('Nothing was changed');
    expect(await status('tms-1')).toBe('active');
    expect((await fleetIncidents()).filter((r) => r.action === 'narrow')).toHaveLength(0);
  });

  it('restore by the selector: one second person confirms for the whole set, in the fleet thread', async () => {
    // Contained by an incident of its own: the fleet restore must not lift it.
    await app.call('PUT', '/v1/agents/mail-6', agent('team6@example.com', 'low', ['mail:send']));
    await app.call('POST', '/v1/agents/mail-6/actions', { action: 'contain', reason: 'its own incident' });

    const asked = textOf(await slash('U0ALICE', 'restore risk:high scope:mail:* vendor patched'));
    expect(asked).toContain('Restore of 5 agents by selector scope:mail:* risk:high requested: a second person must confirm');
    await waitFor(() => slack.posts().some((p) => textOf(p.args).includes('asks to restore 5 agents')), 10_000, 'the request in the fleet thread');
    const request = slack.posts().find((p) => textOf(p.args).includes('asks to restore 5 agents'))!;
    expect(request.args.thread_ts).toBeTruthy();
    const id = ((request.args.blocks as any[]).find((b) => b.type === 'actions').elements[0].value) as string;

    expect(await slackClick('U0ALICE', 'armalo_confirm', id)).toContain('A second person must confirm');
    expect(await status('mail-2')).toBe('contained');
    const done = await slackClick('U0BOB', 'armalo_confirm', id);
    expect(done).toContain('Restored 5 agents');
    for (let i = 1; i <= 5; i++) expect(await status(`mail-${i}`)).toBe('active');
    expect(await status('mail-6')).toBe('contained');
    expect(await slackClick('U0BOB', 'armalo_confirm', id)).toContain('Already confirmed');
    const restores = await app.db.selectFrom('agent_actions').select(['agent_id', 'actor']).where('kind', '=', 'restore').where('agent_id', 'like', 'mail-%').execute();
    expect(restores).toHaveLength(5);
    expect(restores.every((r) => r.actor === 'slack:U0BOB')).toBe(true);
  });
});

describe('fleet commands in Teams', () => {
  it('the same words to the bot: dry run, then a confirmation card with the count', async () => {
    const dry = JSON.stringify((await teamsSay(app, connector, 'contain risk:critical scope:tickets:* --dry-run', ALICE_AAD)).body);
    expect(dry).toContain('would change 6 agents');
    expect(await status('tms-1')).toBe('active');

    const asked = (await teamsSay(app, connector, 'contain risk:critical scope:tickets:* ticketing vendor', ALICE_AAD)).body;
    const card = JSON.stringify(asked.attachments?.[0]?.content ?? asked);
    expect(card).toContain('Contain 6 agents');
    const id = JSON.parse(card).actions[0].data.confirmationId as string;
    expect(await teamsClick(BOB_AAD, 'armalo.confirm', { confirmationId: id })).toContain('Only the person who asked');
    expect(await teamsClick(ALICE_AAD, 'armalo.confirm', { confirmationId: id })).toContain('Contained 6 agents');
    for (let i = 1; i <= 6; i++) expect(await status(`tms-${i}`)).toBe('contained');
  });

  it('a restore by selector over the API waits for one person (any restore holder) to confirm the whole set', async () => {
    const ask = () => app.call('POST', '/v1/actions', { selector: { riskTier: 'critical', scope: 'tickets:*' }, action: 'restore', reason: 'ticketing vendor fixed' }, { headers: { 'idempotency-key': 'tickets-restore' } });
    const res = await ask();
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ status: 'awaiting_confirmation', count: 6 });
    const id: string = res.body.confirmationId;
    // A retry with the same key answers the same confirmation: nothing is asked twice.
    const retry = await ask();
    expect(retry.status).toBe(202);
    expect(retry.body).toEqual({ ...res.body, replayed: true });
    expect(await app.db.selectFrom('fleet_confirmations').select('id').where('kind', '=', 'second_person').where('fleet_incident_id', '=', res.body.incidentId).execute()).toEqual([{ id }]);
    expect((await app.call('GET', `/v1/confirmations/${id}`)).body).toMatchObject({ id, status: 'pending', agentId: null, kind: 'restore', count: 6 });
    expect(await status('tms-1')).toBe('contained');
    await waitFor(() => slack.posts().some((p) => textOf(p.args).includes('asks to restore 6 agents')), 10_000, 'the request in the fleet thread');
    // An API token is not a person: the person who ran the contain may confirm its restore.
    expect(await teamsClick(ALICE_AAD, 'armalo.confirm', { confirmationId: id })).toContain('Restored 6 agents');
    for (let i = 1; i <= 6; i++) expect(await status(`tms-${i}`)).toBe('active');
    expect((await app.call('GET', `/v1/confirmations/${id}`)).body).toMatchObject({ status: 'confirmed', decidedBy: `teams:${ALICE_AAD}`, result: { count: 6 } });
    // Retried after it was confirmed: still that confirmation (its result is on GET /v1/confirmations/{id}).
    expect((await ask()).body).toEqual({ ...res.body, replayed: true });
    // Its request in the thread shows the outcome instead of the buttons.
    await waitFor(() => slack.updates().some((u) => textOf(u.args).includes('asks to restore 6 agents') && textOf(u.args).includes('Confirmed')), 10_000, 'the request to show it was confirmed');
  });
  it('a restore by selector delivered twice (the same Teams activity) asks once, and the second answer says so', async () => {
    for (const id of ['rd-1', 'rd-2']) await app.call('PUT', `/v1/agents/${id}`, agent(`${id}@example.com`, 'low', ['reports:write']));
    expect(JSON.stringify((await teamsSay(app, connector, 'contain scope:reports:* report leak', ALICE_AAD)).body)).toContain('Contained 2 agents');
    const incident = (await fleetIncidents()).find((f) => JSON.stringify(f.selector).includes('reports:*'))!;
    const activity = teamsMessage(connector.url, { text: 'restore scope:reports:* leak fixed', aadObjectId: ALICE_AAD });
    const deliver = async () => {
      const before = connector.sent(activity.conversation.id).length;
      expect((await postActivity(app, activity)).status).toBeLessThan(300);
      await waitFor(() => connector.sent(activity.conversation.id).length > before, 5000, 'the Teams reply');
      return JSON.stringify(connector.sent(activity.conversation.id).at(-1)!.body);
    };
    expect(await deliver()).toMatch(/Restore of 2 agents by selector scope:reports:[^ ]* requested: a second person must confirm/);
    // Teams delivers the same activity again (same id): the answer is the first one's, nothing is asked twice.
    expect(await deliver()).toMatch(/Restore of 2 agents by selector scope:reports:[^ ]* was already requested: a second person must confirm/);
    const asked = await app.db.selectFrom('fleet_confirmations').select('id').where('kind', '=', 'second_person').where('fleet_incident_id', '=', incident.id).execute();
    expect(asked).toHaveLength(1);
    expect(await status('rd-1')).toBe('contained');
  });
});
