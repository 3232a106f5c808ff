import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanRedisPrefix, sampleAgent, startTestApp, testConfig, waitFor, type TestApp } from './support/app.js';
import { createTestDatabase, testPrefix, type TestDatabase } from './support/database.js';
import { FakeSlack } from './support/fake-slack.js';
import { postSigned, slashCommandBody, SIGNING_SECRET } from './support/slack-requests.js';
import { writePolicy } from './support/slack-policy.js';

// The web role answers the command; no worker runs until later. The notice must not be lost.
let database: TestDatabase;
const slack = new FakeSlack();
const prefix = testPrefix();
const apps: TestApp[] = [];
let env: Record<string, string>;

beforeAll(async () => {
  database = await createTestDatabase();
  const apiUrl = await slack.start();
  env = { SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_BOT_TOKEN: 'xoxb-test-token-0123456789', SLACK_API_URL: apiUrl, ARMALO_POLICY_FILE: writePolicy() };
});

afterAll(async () => {
  for (const a of apps) await a.stop();
  await slack.stop();
  await database?.drop();
  await cleanRedisPrefix(prefix);
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
