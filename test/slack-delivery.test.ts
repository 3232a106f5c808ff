import { describe, expect } from 'vitest';
import { sampleAgent, waitFor } from './support/app.js';
import type { FakeSlack } from './support/fake-slack.js';
import { appTest } from './support/fixture.js';
import { postSigned, slashCommandBody } from './support/slack-requests.js';
import { SLACK_TEST_POLICY } from './support/slack-policy.js';

// The web role answers the command; no worker runs until later. The notice must not be lost.
// The test starts the instances itself (the web role first) with the fixture's startApp: the same
// database, queues, policy and fake Slack, each instance in its own role.
let slack: FakeSlack;

const it = appTest({ policy: SLACK_TEST_POLICY, slack: true });
it.beforeAll(({ slack: fakeSlack }) => {
  slack = fakeSlack;
});

describe('incident notices survive a stopped worker', () => {
  it('a contain answered while no worker runs is posted once a worker starts', async ({ startApp }) => {
    const web = await startApp({ env: { ARMALO_ROLE: 'web' } });
    await web.call('PUT', '/v1/agents/patient-bot', sampleAgent);
    const res = await postSigned(web.url, slashCommandBody({ user_id: 'U0ONCALL1', text: 'contain patient-bot worker is down', response_url: slack.responseUrl('x') }));
    expect(JSON.stringify(res.body)).toContain('Contained patient-bot');
    await new Promise((r) => setTimeout(r, 1000));
    expect(slack.posts('C0INCIDENTS')).toHaveLength(0);

    await startApp({ env: { ARMALO_ROLE: 'worker' }, appOptions: { relayPollMs: 200 } });
    await waitFor(() => slack.posts('C0INCIDENTS').length === 1, 10_000, 'the notice after the worker started');
    expect(JSON.stringify(slack.posts('C0INCIDENTS')[0]!.args.blocks)).toContain('patient-bot');
    await new Promise((r) => setTimeout(r, 800));
    expect(slack.posts('C0INCIDENTS')).toHaveLength(1);
  });
});
