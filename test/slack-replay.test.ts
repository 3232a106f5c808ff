import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import type { FakeSlack } from './support/fake-slack.js';
import { blockActionBody, postSigned, slashCommandBody } from './support/slack-requests.js';

const POLICY = `
roles:
  procurement: { members: [{ slack: U0PROC }] }
  security-oncall: { members: [{ slack: U0ONCALL1 }] }
permissions:
  packet: [procurement]
  contain: [security-oncall]
channels:
  incidents: { slack: C0INCIDENTS }
`;
let app: TestApp;
let slack: FakeSlack;

const it = appTest({ policy: POLICY, slack: true, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
  await app.call('PUT', '/v1/agents/replay-bot', sampleAgent);
});

const packets = async () => (await app.db.selectFrom('trust_packets').select('id').where('agent_id', '=', 'replay-bot').execute()).length;
const now = () => Math.floor(Date.now() / 1000);

describe('replayed Slack requests', () => {
  it('the same signed packet command sent three times builds one packet; the replays are acknowledged', async () => {
    const body = slashCommandBody({ user_id: 'U0PROC', text: 'packet replay-bot for Fortress Bank', channel_id: 'C0VENDORS', response_url: slack.responseUrl('replay') });
    const timestamp = now();
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await postSigned(app.url, body, { timestamp }));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(JSON.stringify(answers[0]!.body)).toContain('Building the trust packet');
    expect(JSON.stringify(answers[1]!.body)).toContain('already applied');
    expect(await packets()).toBe(1);
  });

  it('a replay re-signed with a fresh timestamp (same trigger id) changes nothing either', async () => {
    const body = slashCommandBody({ user_id: 'U0PROC', text: 'packet replay-bot', channel_id: 'C0VENDORS', response_url: slack.responseUrl('replay2'), trigger_id: '1800000000.42.replayed' });
    expect((await postSigned(app.url, body, { timestamp: now() - 2 })).status).toBe(200);
    const before = await packets();
    expect((await postSigned(app.url, body, { timestamp: now() })).status).toBe(200);
    expect(await packets()).toBe(before);
  });

  it('a replayed button click is acknowledged and runs once', async () => {
    const click = (id: string) => blockActionBody({ user_id: 'U0ONCALL1', action_id: 'armalo_confirm', value: 'no-such-confirmation', response_url: slack.responseUrl(id) });
    const body = click('click');
    const timestamp = now();
    expect((await postSigned(app.url, body, { timestamp })).status).toBe(200);
    expect((await postSigned(app.url, body, { timestamp })).status).toBe(200);
    // A later, different click is answered; by then the replay would have been answered too.
    expect((await postSigned(app.url, click('click-after'))).status).toBe(200);
    await waitFor(() => slack.responses.some((r) => r.id === 'click-after') && slack.responses.some((r) => r.id === 'click'), 5000, 'the answers');
    expect(slack.responses.filter((r) => r.id === 'click')).toHaveLength(1);
  });

  it('a signed request dated 10 minutes ahead (or behind) is refused with 401 before anything runs', async () => {
    const before = await packets();
    const body = slashCommandBody({ user_id: 'U0PROC', text: 'packet replay-bot', channel_id: 'C0VENDORS', response_url: slack.responseUrl('future') });
    expect((await postSigned(app.url, body, { timestamp: now() + 10 * 60 })).status).toBe(401);
    expect((await postSigned(app.url, body, { timestamp: now() - 10 * 60 })).status).toBe(401);
    expect(await packets()).toBe(before);
    // The refused ones did not spend the trigger id: sent properly, the command works.
    expect(JSON.stringify((await postSigned(app.url, body)).body)).toContain('Building the trust packet');
    expect(await packets()).toBe(before + 1);
  });
});
