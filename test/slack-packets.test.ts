import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanRedisPrefix, sampleAgent, startTestApp, testConfig, waitFor, type TestApp } from './support/app.js';
import { createTestDatabase, testPrefix, type TestDatabase } from './support/database.js';
import { FakeSlack } from './support/fake-slack.js';
import { postSigned, slashCommandBody, SIGNING_SECRET } from './support/slack-requests.js';
import { writePolicy } from './support/slack-policy.js';

const POLICY = `
roles:
  procurement: { members: [{ slack: U0PROC }] }
  security-oncall: { members: [{ slack: U0ONCALL1 }] }
permissions:
  packet: [procurement]
`;
let database: TestDatabase;
let app: TestApp;
const slack = new FakeSlack();
const prefix = testPrefix();
let n = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  const apiUrl = await slack.start();
  app = await startTestApp(testConfig(database.url, prefix, { SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_BOT_TOKEN: 'xoxb-test-token-0123456789', SLACK_API_URL: apiUrl, ARMALO_POLICY_FILE: writePolicy(POLICY) }), { relayPollMs: 200 });
  await app.call('PUT', '/v1/agents/underwriting-bot', sampleAgent);
  await app.call('POST', '/v1/agents/underwriting-bot/pacts', { id: 'no-pii', title: 'Never sends PII outside the company', clauses: ['no SSNs'], severity: 'critical', verification: 'weekly red-team eval' });
  await app.call('POST', '/v1/agents/underwriting-bot/evaluations', { id: 'e-1', pactId: 'no-pii', dimension: 'safety', passed: true, observedAt: new Date(Date.now() - 40 * 86_400_000).toISOString(), source: 'redteam' });
});

afterAll(async () => {
  await app?.stop();
  await slack.stop();
  await database?.drop();
  await cleanRedisPrefix(prefix);
});

const say = async (user: string, text: string) =>
  JSON.stringify((await postSigned(app.url, slashCommandBody({ user_id: user, text, channel_id: 'C0VENDORS', response_url: slack.responseUrl(`p${++n}`) }))).body);

describe('/armalo packet', () => {
  it('procurement asks in a vendor channel: a summary and the PDF arrive there', async () => {
    const ack = await say('U0PROC', 'packet underwriting-bot for Fortress Bank');
    expect(ack).toContain('Building the trust packet for underwriting-bot (for Fortress Bank)');
    await waitFor(() => slack.posts('C0VENDORS').some((p) => JSON.stringify(p.args.blocks).includes('Trust packet')), 10_000, 'the summary');
    const summary = JSON.stringify(slack.posts('C0VENDORS').find((p) => JSON.stringify(p.args.blocks).includes('Trust packet'))!.args.blocks);
    expect(summary).toContain('for Fortress Bank');
    expect(summary).toContain('stale evidence');
    await waitFor(() => slack.calls.some((c) => c.method === 'files.completeUploadExternal'), 10_000, 'the PDF upload');
    const complete = slack.calls.find((c) => c.method === 'files.completeUploadExternal')!;
    expect(complete.args.channel_id).toBe('C0VENDORS');
    await waitFor(() => slack.uploads.size >= 2, 5000, 'both files');
    const files = [...slack.uploads.values()];
    // Uploads arrive as multipart form data: one carries the PDF, the other the chart PNG.
    expect(files.some((f) => f.includes('%PDF-') && f.includes('%%EOF'))).toBe(true);
    expect(files.some((f) => f.includes(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])))).toBe(true);
    expect(JSON.stringify(complete.args.files)).toContain('Score, last 90 days');
  });

  it('refuses a requester without the role, and an unknown agent; nothing is built', async () => {
    const before = (await app.db.selectFrom('trust_packets').select('id').execute()).length;
    expect(await say('U0ONCALL1', 'packet underwriting-bot')).toContain('Not allowed');
    expect(await say('U0PROC', 'packet ghost-bot')).toContain('Unknown agent ghost-bot');
    expect((await app.db.selectFrom('trust_packets').select('id').execute()).length).toBe(before);
  });

  it('packet verify reports intact', async () => {
    const row = await app.db.selectFrom('trust_packets').select('id').where('status', '=', 'ready').executeTakeFirstOrThrow();
    expect(await say('U0ONCALL1', `packet verify ${row.id}`)).toContain('is intact');
  });
});
