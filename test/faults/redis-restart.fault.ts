import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/app.js';
import { faultAgent, FaultWorld, knob, report, slackTally, type AppProcess } from './harness.js';
import { expectedDeliveries, received, runLoad } from './load.js';

// The app runs on a redis-server of the test's own, restarted under load (SHUTDOWN SAVE, then
// started again on the same port and folder, as an operator restarts it). Decisions fail closed
// while it is gone and allow again within 2 s of it answering; nothing acknowledged is lost; jobs
// queued in Redis when it went down resume.
const STALE_AFTER_MS = 1500;
const OUTAGE_S = knob('FAULTS_REDIS_OUTAGE_S', 5);
const RECOVERY_BOUND_MS = 2000;

let world: FaultWorld;
let web: AppProcess;

beforeAll(async () => {
  world = await FaultWorld.create({ ownRedis: true, env: { ARMALO_VIEW_STALE_AFTER_MS: String(STALE_AFTER_MS) } });
  [web] = await Promise.all([world.start('web'), world.start('worker')]);
}, 300_000);

afterAll(async () => {
  await world?.stop();
});

interface Probe {
  at: number;
  status: number;
  decision?: string;
  reasonCodes?: string[];
}

describe('Redis restarted under load', () => {
  it('decisions fail closed while it is gone and recover within 2 s; nothing acknowledged is lost; queued jobs resume', async () => {
    expect((await web.call('PUT', '/v1/agents/rd-probe', faultAgent('rd-probe'))).status).toBe(201);
    await waitFor(async () => (await web.call('POST', '/v1/decisions', { agentId: 'rd-probe', action: 'crm:write' })).body.decision === 'allow', 20_000, 'the probe agent to be allowed');

    // Decisions every 50 ms, all the time.
    const probes: Probe[] = [];
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const at = Date.now();
        const res = await web.call('POST', '/v1/decisions', { agentId: 'rd-probe', action: 'crm:write' }).catch(() => ({ status: 0, body: {} as any }));
        probes.push({ at, status: res.status, decision: res.body?.decision, reasonCodes: res.body?.reasonCodes });
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    // Traffic; and a receiver that refuses for now, so event deliveries wait in Redis's delayed set.
    let refusing = false;
    world.receiver.respond = () => (refusing ? 503 : 200);
    let stopLoad = false;
    const load = runLoad(world, 'rd', 2, () => stopLoad, { web: () => web });
    // REST actions through the outage: acknowledged by Postgres alone.
    const restActions: { agent: string; status: number }[] = [];
    let acting = true;
    const actor = (async () => {
      for (let i = 0; acting; i++) {
        const agent = `rd-rest-${i}`;
        await web.call('PUT', `/v1/agents/${agent}`, faultAgent(agent));
        const res = await web.call('POST', `/v1/agents/${agent}/actions`, { action: 'contain', reason: 'redis drill' });
        restActions.push({ agent, status: res.status });
        await new Promise((r) => setTimeout(r, 200));
      }
    })();

    await waitFor(() => world.slack.posts().length >= 3, 60_000, 'notices to flow');
    refusing = true;
    // Deliveries refused now wait in the events queue's delayed set (their backoff): jobs queued
    // in Redis when it goes down.
    const direct = new Redis(world.redis!.url);
    const delayed = () => direct.zcard(`${world.prefix}:events:delayed`);
    await waitFor(async () => (await delayed()) > 0, 60_000, 'a delivery waiting in the delayed set').catch(() => undefined);
    const delayedBefore = await delayed();
    direct.disconnect();

    const downAt = Date.now();
    await world.redis!.stop('save');
    await new Promise((r) => setTimeout(r, OUTAGE_S * 1000));
    await world.redis!.start();
    const upAt = Date.now();
    refusing = false;

    await waitFor(() => probes.some((p) => p.at > upAt && p.decision === 'allow'), 30_000, 'decisions to allow again');
    const recoveredMs = probes.find((p) => p.at > upAt && p.decision === 'allow')!.at - upAt;
    await new Promise((r) => setTimeout(r, 3000));
    stopLoad = true;
    acting = false;
    const rounds = await load;
    await actor;
    probing = false;
    await prober;

    const expected = await expectedDeliveries(world, 'rd');
    await waitFor(
      async () => {
        const got = received(world);
        return (await slackTally(world, expected.slackKeys)).lost.length === 0 && expected.eventIds.every((id) => got.events.has(id)) && [...expected.callbacks.keys()].every((r) => got.callbacks.has(r));
      },
      180_000,
      'every notice, event and callback',
    ).catch(() => undefined);
    const tally = await slackTally(world, expected.slackKeys);
    const got = received(world);
    const eventsLost = expected.eventIds.filter((id) => !got.events.has(id));
    const callbacksLost = [...expected.callbacks.keys()].filter((r) => !got.callbacks.has(r));

    // Fail closed: once the staleness bound (and a poll) has passed, nothing is allowed until Redis is back.
    const during = probes.filter((p) => p.at > downAt + STALE_AFTER_MS + 1000 && p.at < upAt);
    const allowedDuring = during.filter((p) => p.decision !== 'deny');
    const errors = probes.filter((p) => p.status !== 200);
    const ackedActions = restActions.filter((a) => a.status >= 200 && a.status < 300);
    const contained = await world.db.selectFrom('agent_actions').select('agent_id').where('agent_id', 'like', 'rd-rest-%').where('kind', '=', 'contain').execute();
    const actionsLost = ackedActions.filter((a) => !contained.some((c) => c.agent_id === a.agent)).length;
    const acknowledged = rounds.reduce((n, r) => n + r.acknowledged.length, 0) + ackedActions.length;

    report({
      scenario: `Redis restarted (down ${OUTAGE_S} s)`,
      faults: 1,
      noticesExpected: tally.expected,
      noticesDelivered: tally.delivered,
      noticesDuplicated: tally.duplicates.length,
      actionsAcknowledged: acknowledged,
      actionsLost,
      extra: {
        decisionsDuringOutage: during.length,
        allowedDuringOutage: allowedDuring.length,
        decisionErrors: errors.length,
        recoveredMs,
        queuedAtRestart: delayedBefore,
        restActionsDuringRun: `${ackedActions.length}/${restActions.length} acknowledged`,
        events: `${expected.eventIds.length - eventsLost.length}/${expected.eventIds.length}`,
        callbacks: `${expected.callbacks.size - callbacksLost.length}/${expected.callbacks.size}`,
      },
    });

    expect(during.length).toBeGreaterThan(0);
    expect(allowedDuring).toEqual([]);
    expect(during.every((p) => p.reasonCodes?.includes('view_stale'))).toBe(true);
    expect(errors).toEqual([]);
    expect(recoveredMs).toBeLessThan(RECOVERY_BOUND_MS);
    expect(delayedBefore).toBeGreaterThan(0);
    expect(actionsLost).toBe(0);
    expect(tally.lost).toEqual([]);
    expect(tally.duplicates).toEqual([]);
    expect(eventsLost).toEqual([]);
    expect(callbacksLost).toEqual([]);
  });
});
