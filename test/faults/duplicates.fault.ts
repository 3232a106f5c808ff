import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/app.js';
import { signPayload } from '../../src/webhooks/signature.js';
import { approvalClickBody, postSigned, slashCommandBody } from '../support/slack-requests.js';
import { faultAgent, FaultWorld, report, slackTally, type AppProcess } from './harness.js';

// Slack retries a request it got no quick answer to (X-Slack-Retry-Num), and Armalo may deliver a
// webhook twice or late. Sent here together, repeated and out of order, to the real web process:
// each command, click and event takes effect once, and a late event does not undo a newer one.
const WEBHOOK_SECRET = 'whsec_inbound_faults_0123456789';

let world: FaultWorld;
let web: AppProcess;

beforeAll(async () => {
  world = await FaultWorld.create({ env: { ARMALO_WEBHOOK_SECRET: WEBHOOK_SECRET } });
  [web] = await Promise.all([world.start('web'), world.start('worker')]);
}, 300_000);

afterAll(async () => {
  await world?.stop();
});

let seq = 0;
const responseUrl = () => world.slack.responseUrl(`dup-${++seq}`);

describe('duplicate and out-of-order deliveries', () => {
  it('Slack retries of a command and of a click, arriving before and after the original, take effect once', async () => {
    let faults = 0;
    let acknowledged = 0;
    // Every copy is answered 200 (the replays at once); a 404 is Bolt's answer to a request its
    // handler did not acknowledge within Slack's 3 s, which only a starved machine produces: counted.
    const statuses: number[] = [];
    const agents = Array.from({ length: 5 }, (_, i) => `dup-${i}`);
    for (const agent of agents) expect((await web.call('PUT', `/v1/agents/${agent}`, faultAgent(agent))).status).toBe(201);

    for (const agent of agents) {
      // One command (one trigger id), sent as the original and two retries, the retries first and
      // all at once: what Slack does when our answer was slow.
      const body = slashCommandBody({ user_id: 'U0ONCALL1', text: `contain ${agent} duplicate drill`, channel_id: 'C0OPS', response_url: responseUrl() });
      const answers = await Promise.all([postSigned(web.url, body, { retryNum: 2 }), postSigned(web.url, body, { retryNum: 1 }), postSigned(web.url, body)]);
      faults += 2;
      statuses.push(...answers.map((a) => a.status));
      acknowledged++;
    }
    // An approval request sent twice with its idempotency key, then each approver's click sent
    // three times (retries) at once. (On an agent of its own: a contained agent's requests are refused.)
    expect((await web.call('PUT', '/v1/agents/dup-payer', faultAgent('dup-payer'))).status).toBe(201);
    const ask = { agentId: 'dup-payer', action: 'payments:transfer', context: { amount: 50_000 }, justification: 'dup pay', idempotencyKey: 'dup-pay' };
    const payment = await web.call('POST', '/v1/approval-requests', ask);
    expect(payment.status).toBe(201);
    const again = await web.call('POST', '/v1/approval-requests', ask);
    faults++;
    expect(again.body.id).toBe(payment.body.id);
    for (const user of ['U0RISK', 'U0CISO']) {
      const click = approvalClickBody({ user_id: user, request_id: payment.body.id, response_url: responseUrl() });
      const answers = await Promise.all([postSigned(web.url, click, { retryNum: 1 }), postSigned(web.url, click), postSigned(web.url, click, { retryNum: 2 })]);
      faults += 2;
      statuses.push(...answers.map((a) => a.status));
      acknowledged++;
    }

    // A click is acknowledged before its decision is recorded: wait for both, then for any stray copy.
    const decided = () => world.db.selectFrom('approval_decisions').select(['person_key']).where('request_id', '=', payment.body.id).execute();
    await waitFor(async () => (await decided()).length >= 2, 30_000, 'both approvals').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1000));
    const contains = await world.db.selectFrom('agent_actions').select(['agent_id']).where('kind', '=', 'contain').where('agent_id', 'in', agents).execute();
    const decisions = await decided();
    const status = await web.call('GET', `/v1/approval-requests/${payment.body.id}`);
    const incidents = await world.db.selectFrom('incidents').select('id').where('agent_id', 'in', agents).execute();
    const keys = incidents.map((i) => `slack:incident:${i.id}`);
    await waitFor(async () => (await slackTally(world, keys)).lost.length === 0, 60_000, 'the incident notices');
    await new Promise((r) => setTimeout(r, 1000));
    const tally = await slackTally(world, keys);
    const roots = world.slack.posts('C0INCIDENTS').filter((p) => !p.args.thread_ts);

    report({
      scenario: 'Slack retries (X-Slack-Retry-Num), before and after the original',
      faults,
      noticesExpected: tally.expected,
      noticesDelivered: tally.delivered,
      noticesDuplicated: tally.duplicates.length + Math.max(0, roots.length - agents.length),
      actionsAcknowledged: acknowledged,
      actionsLost: Math.max(0, agents.length - contains.length),
      extra: { containsApplied: contains.length, approvalDecisions: decisions.length, answersOver3s: statuses.filter((s) => s === 404).length },
    });
    expect(statuses.filter((s) => s !== 200 && s !== 404)).toEqual([]);

    expect(contains.map((c) => c.agent_id).sort()).toEqual(agents);
    expect(decisions).toHaveLength(2);
    expect(status.body.status).toBe('approved');
    expect(incidents).toHaveLength(agents.length);
    expect(roots).toHaveLength(agents.length);
    expect(tally.duplicates).toEqual([]);
  });

  it('Armalo webhooks delivered twice, at once and late, apply once; an older event arriving last does not undo a newer one', async () => {
    let faults = 0;
    const agent = 'dup-trust';
    expect((await web.call('PUT', `/v1/agents/${agent}`, faultAgent(agent))).status).toBe(201);
    const at = (secondsAgo: number) => new Date(Date.now() - secondsAgo * 1000).toISOString();
    const event = (id: string, score: number, secondsAgo: number) => ({ id, type: 'score.changed', createdAt: at(secondsAgo), data: { agentId: agent, score } });
    const send = async (e: unknown): Promise<{ status: number; body: any }> => {
      const body = JSON.stringify(e);
      const res = await fetch(`${web.url}/webhooks/armalo`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-armalo-signature': signPayload(WEBHOOK_SECRET, body, Math.floor(Date.now() / 1000)) }, body });
      return { status: res.status, body: await res.json() };
    };

    // The same event three times at once: applied once, the others answered as duplicates.
    const first = event('evt-dup-1', 820, 60);
    const answers = await Promise.all([send(first), send(first), send(first)]);
    faults += 2;
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers.filter((a) => a.body.status === 'applied')).toHaveLength(1);

    // Newer, then an older one that was delayed: the newer score stands.
    expect((await send(event('evt-new', 450, 10))).body.status).toBe('applied');
    const late = await send(event('evt-late', 900, 30));
    faults++;
    expect(late.status).toBe(200);
    // And the newer one again (a redelivery), later still.
    const redelivered = await send(event('evt-new', 450, 10));
    faults++;
    expect(redelivered.body.status).toBe('duplicate');

    const score = await web.call('GET', `/v1/agents/${agent}/score`);
    const audit = (await web.call('GET', `/v1/audit?agentId=${agent}&limit=50`)).body.entries.filter((e: any) => e.actor === 'armalo:score.changed');
    report({
      scenario: 'Armalo webhooks twice, concurrently and out of order',
      faults,
      noticesExpected: 0,
      noticesDelivered: 0,
      noticesDuplicated: 0,
      actionsAcknowledged: 3,
      actionsLost: 0,
      extra: { scoreAfter: score.body.score, scoreChangesAudited: audit.length },
    });
    expect(score.body.score).toBe(450);
    expect(audit.length).toBe(2);
  });
});
