import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { slashCommand } from './support/drive.js';
import type { FakeSlack } from './support/fake-slack.js';

const POLICY = `
roles:
  procurement: { members: [{ slack: U0PROC }] }
  security-oncall: { members: [{ slack: U0ONCALL1 }] }
permissions:
  packet: [procurement]
`;
let app: TestApp;
let slack: FakeSlack;

const it = appTest({ policy: POLICY, slack: true, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
  await app.call('PUT', '/v1/agents/underwriting-bot', sampleAgent);
  await app.call('POST', '/v1/agents/underwriting-bot/pacts', { id: 'no-pii', title: 'Never sends PII outside the company', clauses: ['no SSNs'], severity: 'critical', verification: 'weekly red-team eval' });
  await app.call('POST', '/v1/agents/underwriting-bot/evaluations', { id: 'e-1', pactId: 'no-pii', dimension: 'safety', passed: true, observedAt: new Date(Date.now() - 40 * 86_400_000).toISOString(), source: 'redteam' });
});

const say = async (user: string, text: string) => JSON.stringify((await slashCommand(app, slack, user, text, { channel: 'C0VENDORS' })).body);

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
