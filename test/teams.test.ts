import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanRedisPrefix, sampleAgent, startTestApp, testConfig, waitFor, type TestApp } from './support/app.js';
import { createTestDatabase, testPrefix, type TestDatabase } from './support/database.js';
import { FakeConnector, teamsMessage } from './support/fake-connector.js';
import { writePolicy } from './support/slack-policy.js';

const ONCALL = '00000000-0000-0000-0000-0000000000a1';
const STRANGER = '00000000-0000-0000-0000-0000000000ff';
const POLICY = `
roles:
  security-oncall: { members: [{ teams: ${ONCALL} }, { slack: U0ONCALL2 }] }
permissions:
  contain: [security-oncall]
  restore: [security-oncall]
channels:
  incidents: { teams: "19:incidents@thread.tacv2" }
`;
let database: TestDatabase;
let app: TestApp;
const connector = new FakeConnector();
const prefix = testPrefix();

beforeAll(async () => {
  database = await createTestDatabase();
  await connector.start();
  app = await startTestApp(testConfig(database.url, prefix, { TEAMS_DEV_UNAUTHENTICATED: '1', ARMALO_POLICY_FILE: writePolicy(POLICY) }), { relayPollMs: 200 });
  await app.call('PUT', '/v1/agents/teams-bot', sampleAgent);
});

afterAll(async () => {
  await app?.stop();
  await connector.stop();
  await database?.drop();
  await cleanRedisPrefix(prefix);
});

async function say(text: string, aadObjectId = ONCALL) {
  const before = connector.calls.length;
  const activity = teamsMessage(connector.url, { text, aadObjectId });
  const res = await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(activity) });
  expect(res.status).toBeLessThan(300);
  await waitFor(() => connector.calls.length > before, 5000, 'the reply');
  const reply = connector.calls[connector.calls.length - 1]!;
  expect(reply.conversationId).toBe(activity.conversation.id);
  return JSON.stringify(reply.body.attachments?.[0]?.content ?? reply.body);
}

describe('Teams: the same commands as messages to the bot', () => {
  it('help, and a private specific error for garbage', async () => {
    expect(await say('help')).toContain('contain <agent>');
    const garbage = await say('frobnicate teams-bot');
    expect(garbage).toContain('unknown command');
    expect(garbage).toContain('Usage');
  });

  it('contain with authorization; the agent is denied right after', async () => {
    const refused = await say('contain teams-bot not allowed', STRANGER);
    expect(refused).toContain('contain needs one of these roles: security-oncall');
    expect((await app.call('POST', '/v1/decisions', { agentId: 'teams-bot', action: 'crm:write' })).body.decision).toBe('allow');
    const ok = await say('<at>Armalo</at> contain teams-bot suspicious tool calls');
    expect(ok).toContain('Contained teams-bot');
    expect((await app.call('POST', '/v1/decisions', { agentId: 'teams-bot', action: 'crm:write' })).body.decision).toBe('deny');
    expect(await say('status teams-bot')).toContain('is contained');
    const restored = await say('restore teams-bot false alarm');
    expect(restored).toContain('Restored teams-bot');
    const audit = (await app.call('GET', '/v1/audit?agentId=teams-bot&limit=2')).body.entries;
    expect(audit.map((e: any) => e.actor)).toEqual([`teams:${ONCALL}`, `teams:${ONCALL}`]);
  });

  it('refuses a malformed activity with 400', async () => {
    const res = await fetch(`${app.url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":' });
    expect(res.status).toBe(400);
  });
});
