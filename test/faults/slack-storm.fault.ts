import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/app.js';
import { postSigned, slashCommandBody } from '../support/slack-requests.js';
import { faultAgent, FaultWorld, knob, report, seededRandom, slackTally, type AppProcess } from './harness.js';

// Slack answers 429 (with Retry-After) or 5xx to most calls for FAULTS_STORM_S seconds (the issue's
// 60 by default) while incidents run their course: narrowed (the root), contained and restored
// (two lines in its thread). Afterwards every notice is there once, and each thread in order.
const STORM_S = knob('FAULTS_STORM_S', 60);
const SEED = knob('FAULTS_SEED', 15_015);
/** Share of Slack calls that fail during the storm. */
const FAIL_SHARE = 0.7;

let world: FaultWorld;
let web: AppProcess;

beforeAll(async () => {
  world = await FaultWorld.create();
  [web] = await Promise.all([world.start('web'), world.start('worker'), world.start('worker')]);
}, 300_000);

afterAll(async () => {
  await world?.stop();
});

let seq = 0;
const slash = (user: string, text: string) => postSigned(web.url, slashCommandBody({ user_id: user, text, channel_id: 'C0OPS', response_url: world.slack.responseUrl(`storm-${++seq}`) }));

describe('a Slack 429/5xx storm', () => {
  it(`delivers every notice once afterwards, in order in each incident thread (${STORM_S} s storm, seed ${SEED})`, async () => {
    const random = seededRandom(SEED);
    let failures = 0;
    let storming = true;
    world.slack.failWith = (method) => {
      if (!storming || !method.startsWith('chat.') || random() >= FAIL_SHARE) return undefined;
      failures++;
      const r = random();
      return r < 0.5 ? { status: 429, retryAfter: 1 + Math.floor(r * 6) } : { status: ([500, 502, 503] as const)[Math.floor(random() * 3)]! };
    };
    const stormEnds = Date.now() + STORM_S * 1000;
    const incidents: string[] = [];
    let acknowledged = 0;
    const refused: string[] = [];
    let actionAcks = 0;
    const ack = (what: string, status: number) => {
      if (status < 200 || status >= 300) return refused.push(`${what} ${status}`);
      acknowledged++;
      if (what !== 'register') actionAcks++;
    };
    // Incidents start through the first two thirds of the storm, two lanes at a time.
    await Promise.all(
      [0, 1].map(async (lane) => {
        for (let i = 0; Date.now() < stormEnds - (STORM_S * 1000) / 3; i++) {
          const agent = `st-${lane}-${i}`;
          ack('register', (await web.call('PUT', `/v1/agents/${agent}`, faultAgent(agent))).status);
          ack('narrow', (await web.call('POST', `/v1/agents/${agent}/actions`, { action: 'narrow', scopes: ['crm:*'], reason: `storm ${agent} narrowed` })).status);
          ack('contain', (await slash('U0ONCALL1', `contain ${agent} storm contain`)).status);
          ack('restore', (await slash('U0ONCALL2', `restore ${agent} storm restore`)).status);
          incidents.push(agent);
          await new Promise((r) => setTimeout(r, 500 + Math.floor(random() * 1500)));
        }
      }),
    );
    await waitFor(() => Date.now() >= stormEnds, STORM_S * 1000 + 5000, 'the storm to end');
    storming = false;
    const stormEndedAt = Date.now();

    const rows = await world.db.selectFrom('incidents').select(['id', 'agent_id']).where('agent_id', 'like', 'st-%').execute();
    const steps = await world.db.selectFrom('agent_actions').select(['id', 'agent_id', 'kind', 'created_at']).where('agent_id', 'like', 'st-%').orderBy('created_at').execute();
    const expectedKeys = [...rows.map((r) => `slack:incident:${r.id}`), ...steps.filter((s) => s.kind !== 'narrow').map((s) => `slack:action:${s.id}`)];
    // Retries back off up to 128 s after a run of 5xx, and once Slack has said "slow down" a channel's
    // backlog goes out at its pace of one post a second, in turns (the storm's notices share one
    // channel): allow for both.
    const drainLimitMs = Math.max(300_000, 128_000 + expectedKeys.length * 2000);
    await waitFor(async () => (await slackTally(world, expectedKeys)).lost.length === 0, drainLimitMs, 'every notice after the storm').catch(() => undefined);
    const drainS = (Date.now() - stormEndedAt) / 1000;
    const tally = await slackTally(world, expectedKeys);

    // Order in each thread: the lines come in the order of the steps they tell.
    const ledger = new Map((await world.db.selectFrom('chat_messages').select(['key', 'ts']).execute()).map((r) => [r.key, r.ts]));
    const posts = world.slack.posts('C0INCIDENTS');
    const outOfOrder: string[] = [];
    for (const incident of rows) {
      const rootTs = ledger.get(`slack:incident:${incident.id}`);
      const thread = posts.filter((p) => rootTs && p.args.thread_ts === rootTs).sort((a, b) => (a.answeredAt ?? 0) - (b.answeredAt ?? 0));
      const told = thread.map((p) => [...ledger.entries()].find(([, ts]) => ts === p.answer?.ts)?.[0]);
      const wanted = steps.filter((s) => s.agent_id === incident.agent_id && s.kind !== 'narrow').map((s) => `slack:action:${s.id}`);
      if (JSON.stringify(told) !== JSON.stringify(wanted)) outOfOrder.push(incident.agent_id);
    }

    report({
      scenario: `Slack 429/5xx storm, ${STORM_S} s (seed ${SEED})`,
      faults: failures,
      noticesExpected: tally.expected,
      noticesDelivered: tally.delivered,
      noticesDuplicated: tally.duplicates.length,
      actionsAcknowledged: acknowledged,
      actionsLost: Math.max(0, actionAcks - steps.length),
      extra: { incidents: rows.length, threadsOutOfOrder: outOfOrder.length, drainAfterStormS: drainS.toFixed(1), refused: refused.length },
    });

    expect(refused).toEqual([]);
    expect(rows.length).toBe(incidents.length);
    // Register + three actions per incident; the actions are all in Postgres.
    expect(steps.length).toBe(incidents.length * 3);
    expect(failures).toBeGreaterThan(0);
    expect(tally.lost).toEqual([]);
    expect(tally.duplicates).toEqual([]);
    expect(outOfOrder).toEqual([]);
  });
});
