import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { signedWebhook } from './support/drive.js';

// Issue 16 item 3: an external score (score.changed) stands at its own event time in the packet's
// score history, also when it was held until its agent was registered and applied days later.
const SECRET = 'armalo_inbound_secret_0123456789';
const DAY = 86_400_000;
let app: TestApp;

const it = appTest({ env: { ARMALO_WEBHOOK_SECRET: SECRET }, appOptions: { relayPollMs: 200 } });
it.beforeAll(({ app: started }) => {
  app = started;
});

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

describe('an external score in the packet', () => {
  it('stands from the event time Armalo gave it, not from when it was applied', async () => {
    const createdAt = new Date(Date.now() - 3 * DAY).toISOString();
    const held = await signedWebhook(app, SECRET, { id: 'ext-score-1', type: 'score.changed', createdAt, data: { agentId: 'scored-late-bot', score: 640 } });
    expect(held.body.status).toBe('held');
    // Registered now: the held score is applied now, three days after Armalo set it.
    expect((await app.call('PUT', '/v1/agents/scored-late-bot', sampleAgent)).status).toBe(201);
    expect((await app.call('GET', '/v1/agents/scored-late-bot/score')).body.score).toBe(640);

    const res = await app.call('POST', '/v1/trust-packets', { agentId: 'scored-late-bot' });
    expect(res.status).toBe(202);
    const id = res.body.id as string;
    await waitFor(async () => (await app.call('GET', `/v1/trust-packets/${id}`)).body.status === 'ready', 15_000, 'the packet');
    const points = (await app.call('GET', `/v1/trust-packets/${id}`)).body.packet.scoreHistory.points as { at: string; score: number | null; source: string }[];
    const on = (d: string) => points.find((p) => p.at.slice(0, 10) === d);
    // Two days ago the external score already stood (it was set three days ago)...
    expect(on(day(Date.now() - 2 * DAY))).toMatchObject({ score: 640, source: 'external' });
    // ...and four days ago it did not yet.
    expect(on(day(Date.now() - 4 * DAY))?.source).not.toBe('external');
  });
});
