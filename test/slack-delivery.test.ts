import { afterAll, describe, expect } from 'vitest';
import { sampleAgent, startTestApp, testConfig, waitFor, type TestApp } from './support/app.js';
import type { TestDatabase } from './support/database.js';
import type { FakeSlack } from './support/fake-slack.js';
import { appTest, slackEnv } from './support/fixture.js';
import { postSigned, slashCommandBody } from './support/slack-requests.js';
import { SLACK_TEST_POLICY } from './support/slack-policy.js';

// The web role answers the command; no worker runs until later. The notice must not be lost.
// The test starts the instances itself (the web role first): the fixture gives it the database, queues and fake Slack.
let database: TestDatabase;
let slack: FakeSlack;
let prefix: string;
const apps: TestApp[] = [];
let env: Record<string, string>;

const it = appTest({ policy: SLACK_TEST_POLICY, slack: true });
it.beforeAll(({ database: fixtureDatabase, slack: fakeSlack, prefix: fixturePrefix, policyFile }) => {
  database = fixtureDatabase;
  slack = fakeSlack;
  prefix = fixturePrefix;
  env = { ...(slackEnv(slack) as Record<string, string>), ARMALO_POLICY_FILE: policyFile! };
});

afterAll(async () => {
  for (const a of apps) await a.stop();
});

describe('incident notices survive a stopped worker', () => {
  it('a contain answered while no worker runs is posted once a worker starts', async () => {
    const web = await startTestApp(testConfig(database.url, prefix, { ...env, ARMALO_ROLE: 'web' }));
    apps.push(web);
    await web.call('PUT', '/v1/agents/patient-bot', sampleAgent);
    const res = await postSigned(web.url, slashCommandBody({ user_id: 'U0ONCALL1', text: 'contain patient-bot worker is down', response_url: slack.responseUrl('x') }));
    expect(JSON.stringify(res.body)).toContain('Contained patient-bot');
    await new Promise((r) => setTimeout(r, 1000));
    expect(slack.posts('C0INCIDENTS')).toHaveLength(0);

    apps.push(await startTestApp(testConfig(database.url, prefix, { ...env, ARMALO_ROLE: 'worker' }), { relayPollMs: 200 }));
    await waitFor(() => slack.posts('C0INCIDENTS').length === 1, 10_000, 'the notice after the worker started');
    expect(JSON.stringify(slack.posts('C0INCIDENTS')[0]!.args.blocks)).toContain('patient-bot');
    await new Promise((r) => setTimeout(r, 800));
    expect(slack.posts('C0INCIDENTS')).toHaveLength(1);
  });
});
