import { describe, expect } from 'vitest';
import { sampleAgent, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { signedWebhook } from './support/drive.js';

const SECRET = 'armalo_inbound_secret_0123456789';
let app: TestApp;

const it = appTest({ env: { ARMALO_ROLE: 'web', ARMALO_WEBHOOK_SECRET: SECRET } });
it.beforeAll(async ({ app: started }) => {
  app = started;
  await app.call('PUT', '/v1/agents/clock-bot', sampleAgent);
});

const webhook = (event: unknown) => signedWebhook(app, SECRET, event);
const evaluationCount = async () => (await app.db.selectFrom('evaluations').select('id').where('agent_id', '=', 'clock-bot').execute()).length;
const inMinutes = (m: number) => new Date(Date.now() + m * 60_000).toISOString();

describe('evidence dated in the future', () => {
  it('REST: an evaluation observed in 2099 is refused with a 400 naming observedAt; nothing is recorded', async () => {
    const res = await app.call('POST', '/v1/agents/clock-bot/evaluations', { id: 'future-1', dimension: 'safety', passed: true, observedAt: '2099-01-01T00:00:00Z', source: 'redteam' });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain('observedAt');
    expect(JSON.stringify(res.body)).toContain('future');
    expect(await evaluationCount()).toBe(0);
    expect((await app.call('GET', '/v1/agents/clock-bot/score')).body.newestEvidence).toBeNull();
  });

  it('REST: a few minutes of clock skew is accepted, ten minutes ahead is not', async () => {
    expect((await app.call('POST', '/v1/agents/clock-bot/evaluations', { id: 'skew-ok', dimension: 'safety', passed: true, observedAt: inMinutes(2), source: 'redteam' })).status).toBe(201);
    expect((await app.call('POST', '/v1/agents/clock-bot/evaluations', { id: 'skew-bad', dimension: 'safety', passed: true, observedAt: inMinutes(10), source: 'redteam' })).status).toBe(400);
    expect(await evaluationCount()).toBe(1);
  });

  it('signed webhook: a future data.observedAt or createdAt is a 400 naming the field; the id is not spent', async () => {
    const before = await evaluationCount();
    const evalEvent = { id: 'wh-future-1', type: 'eval.completed', createdAt: new Date().toISOString(), data: { agentId: 'clock-bot', evaluationId: 'ev-future', dimension: 'safety', passed: true, observedAt: '2099-01-01T00:00:00Z' } };
    const refused = await webhook(evalEvent);
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toContain('data.observedAt');

    const scoreEvent = { id: 'wh-future-2', type: 'score.changed', createdAt: '2099-01-01T00:00:00Z', data: { agentId: 'clock-bot', score: 900 } };
    const refused2 = await webhook(scoreEvent);
    expect(refused2.status).toBe(400);
    expect(refused2.body.error.message).toContain('createdAt');
    expect(await evaluationCount()).toBe(before);
    expect(await app.db.selectFrom('inbound_events').select('id').where('id', 'in', ['wh-future-1', 'wh-future-2']).execute()).toHaveLength(0);

    // Corrected, the same id goes through.
    const fixed = await webhook({ ...evalEvent, data: { ...evalEvent.data, observedAt: new Date().toISOString() } });
    expect(fixed).toMatchObject({ status: 200, body: { status: 'applied' } });
  });
});
