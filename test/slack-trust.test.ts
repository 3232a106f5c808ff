import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { signedWebhook, slashCommand } from './support/drive.js';
import type { FakeSlack } from './support/fake-slack.js';

const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }] }
permissions:
  contain: [security-oncall]
channels:
  incidents: { slack: C0INCIDENTS }
  scores: { slack: C0SCORES }
`;
const SECRET = 'armalo_inbound_secret_0123456789';
let app: TestApp;
let slack: FakeSlack;

const it = appTest({ policy: POLICY, slack: true, env: { ARMALO_WEBHOOK_SECRET: SECRET }, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
  await app.call('PUT', '/v1/agents/scored-bot', sampleAgent);
});

const say = async (text: string, channel = 'C0SUBS') => JSON.stringify((await slashCommand(app, slack, 'U0ONCALL1', text, { channel })).body);
const webhook = async (event: unknown): Promise<void> => void (await signedWebhook(app, SECRET, event));
const tier = (id: string, t: string, score: number) => webhook({ id, type: 'score.tier_changed', createdAt: new Date().toISOString(), data: { agentId: 'scored-bot', tier: t, score } });

describe('trust in chat', () => {
  it('score says plainly when there is no data', async () => {
    const text = await say('score scored-bot');
    expect(text).toContain('has no score yet');
    expect(text).toContain('No evaluations or score events');
  });

  it('subscribe / unsubscribe round trip; tier changes reach subscribed channels and the scores channel', async () => {
    expect(await say('subscribe * scores')).toContain('This channel gets scores notices for every agent');
    expect(await say('subscribe scored-bot', 'C0TEAM')).toContain('scores');
    await tier('t-1', 'gold', 800);
    await waitFor(() => ['C0SUBS', 'C0TEAM', 'C0SCORES'].every((c) => slack.posts(c).some((p) => JSON.stringify(p.args.blocks).includes('gold'))), 5000, 'the tier notice in all three channels');

    expect(await say('unsubscribe * scores')).toContain('no longer gets notices for every agent');
    expect(await app.db.selectFrom('subscriptions').select('channel').where('channel', '=', 'C0SUBS').execute()).toHaveLength(0);
    await tier('t-2', 'silver', 600);
    await waitFor(() => slack.posts('C0SCORES').some((p) => JSON.stringify(p.args.blocks).includes('silver')), 5000, 'the second notice');
    await new Promise((r) => setTimeout(r, 500));
    expect(slack.posts('C0SUBS').some((p) => JSON.stringify(p.args.blocks).includes('silver'))).toBe(false);
    expect(slack.posts('C0TEAM').some((p) => JSON.stringify(p.args.blocks).includes('silver'))).toBe(true);
  });

  it('score shows score, tier and a trend once there is data', async () => {
    const text = await say('score scored-bot');
    expect(text).toContain('scored-bot: 600 (silver)');
    expect(text).toMatch(/Trend, 30 days: [▁-█]{2}/);
  });

  it('a channel subscribed to incidents gets its own incident notice and thread', async () => {
    await app.call('PUT', '/v1/agents/watched-bot', sampleAgent);
    expect(await say('subscribe watched-bot incidents', 'C0WATCH')).toContain('incidents notices for watched-bot');
    await app.call('POST', '/v1/agents/watched-bot/actions', { action: 'contain', reason: 'watched' });
    await waitFor(() => slack.posts('C0WATCH').some((p) => JSON.stringify(p.args.blocks).includes('watched-bot') && !p.args.thread_ts), 5000, 'the notice in the subscribed channel');
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => JSON.stringify(p.args.blocks).includes('watched-bot')), 5000, 'the notice in the incidents channel');
    await app.call('POST', '/v1/agents/watched-bot/actions', { action: 'narrow', scopes: ['crm:*'], reason: 'more' });
    await waitFor(() => slack.posts('C0WATCH').some((p) => p.args.thread_ts && JSON.stringify(p.args.blocks).includes('narrowed')), 5000, 'the thread reply in the subscribed channel');
    expect(slack.posts('C0WATCH').filter((p) => !p.args.thread_ts && JSON.stringify(p.args.blocks).includes('watched-bot'))).toHaveLength(1);
  });

  it('refuses bad subscribe input privately', async () => {
    expect(await say('subscribe scored-bot everything')).toContain('unknown kind');
    expect(await say('subscribe')).toContain('needs an agent or *');
  });
});

describe('the daily trust pass', () => {
  it('decays computed scores and announces stale evidence once', async ({ startApp }) => {
    const { ManualClock } = await import('../src/core/clock.js');
    const clock = new ManualClock(new Date());
    // Its own database and queues: the clock of this instance runs a month ahead.
    const other = await startApp({ isolated: true, appOptions: { clock } });
    {
      await other.call('PUT', '/v1/agents/aging-bot', sampleAgent);
      await other.call('POST', '/v1/agents/aging-bot/evaluations', { id: 'a-1', dimension: 'safety', passed: true, observedAt: clock.now().toISOString(), source: 'redteam' });
      expect((await other.call('GET', '/v1/agents/aging-bot/score')).body.score).toBe(1000);
      clock.advance(31 * 86_400_000);
      expect(await other.trust.dailyPass()).toEqual({ rescored: 1, stale: 1 });
      // 31 days: 24 past the grace period, 3 whole weeks → −3.
      expect((await other.call('GET', '/v1/agents/aging-bot/score')).body).toMatchObject({ score: 997, freshness: 'stale' });
      await waitFor(() => slack.posts('C0SCORES').some((p) => JSON.stringify(p.args.blocks).includes('aging-bot') && JSON.stringify(p.args.blocks).includes('evidence is stale')), 5000, 'the stale notice');
      expect(await other.trust.dailyPass()).toEqual({ rescored: 0, stale: 0 });
    }
  });
});
