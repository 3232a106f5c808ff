import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/app.js';
import { PG_BASE } from '../support/database.js';
import { postSigned, slashCommandBody } from '../support/slack-requests.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { faultAgent, FaultWorld, knob, report, slackTally, type AppProcess } from './harness.js';

// The web and worker processes reach Postgres through a TCP proxy the test cuts for FAULTS_PG_CUT_S
// seconds (5 by default) during REST and chat load: every connection drops, new ones are refused.
// No process crashes, no decision answers 5xx, /readyz says 503 during the cut and 200 after, and
// the state is whole: every action either happened completely (audited, announced) or not at all.
const CUT_S = knob('FAULTS_PG_CUT_S', 5);
const target = new URL(PG_BASE);
const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));

let world: FaultWorld;
let web: AppProcess;
let worker: AppProcess;

beforeAll(async () => {
  const port = await proxy.start();
  world = await FaultWorld.create({
    appDatabaseUrl: (direct) => {
      const url = new URL(direct);
      url.port = String(port);
      return url.toString();
    },
    env: { ARMALO_VIEW_STALE_AFTER_MS: '1500' },
  });
  [web, worker] = await Promise.all([world.start('web'), world.start('worker')]);
}, 300_000);

afterAll(async () => {
  // The children are killed (SIGKILL), so they need no Postgres to stop; then the proxy goes.
  await world?.stop();
  await proxy.stop();
});

let seq = 0;

describe('Postgres connections cut', () => {
  it(`for ${CUT_S} s under REST and chat load: no crash, no 5xx from decisions, readiness follows, no partial state`, async () => {
    for (let i = 0; i < 6; i++) expect((await web.call('PUT', `/v1/agents/pg-${i}`, faultAgent(`pg-${i}`))).status).toBe(201);

    const decisions: { at: number; status: number; decision?: string }[] = [];
    const ready: { at: number; status: number }[] = [];
    const actions: { agent: string; kind: string; via: string; status: number; at: number }[] = [];
    let running = true;
    const loops = [
      (async () => {
        while (running) {
          const at = Date.now();
          const res = await web.call('POST', '/v1/decisions', { agentId: `pg-${Math.floor(Math.random() * 6)}`, action: 'crm:write' }).catch(() => ({ status: 0, body: {} as any }));
          decisions.push({ at, status: res.status, decision: res.body?.decision });
          await new Promise((r) => setTimeout(r, 30));
        }
      })(),
      (async () => {
        while (running) {
          const at = Date.now();
          const res = await fetch(`${web.url}/readyz`).catch(() => undefined);
          ready.push({ at, status: res?.status ?? 0 });
          await new Promise((r) => setTimeout(r, 200));
        }
      })(),
      // REST actions: contain and restore in turn on three agents.
      (async () => {
        for (let i = 0; running; i++) {
          const agent = `pg-${i % 3}`;
          const kind = Math.floor(i / 3) % 2 === 0 ? 'contain' : 'restore';
          const at = Date.now();
          const res = await web.call('POST', `/v1/agents/${agent}/actions`, { action: kind, reason: `pg drill ${i}` }).catch(() => ({ status: 0, body: {} }));
          actions.push({ agent, kind, via: 'rest', status: res.status, at });
          await new Promise((r) => setTimeout(r, 150));
        }
      })(),
      // Chat: narrow and restore from Slack on three other agents.
      (async () => {
        for (let i = 0; running; i++) {
          const agent = `pg-${3 + (i % 3)}`;
          const text = Math.floor(i / 3) % 2 === 0 ? `narrow ${agent} crm:* pg drill ${i}` : `restore ${agent} pg drill ${i}`;
          const at = Date.now();
          const res = await postSigned(web.url, slashCommandBody({ user_id: 'U0ONCALL1', text, channel_id: 'C0OPS', response_url: world.slack.responseUrl(`pg-${++seq}`) })).catch(() => ({ status: 0, body: {} }));
          actions.push({ agent, kind: text.split(' ')[0]!, via: 'slack', status: res.status, at });
          await new Promise((r) => setTimeout(r, 150));
        }
      })(),
    ];

    await waitFor(() => actions.length >= 10, 30_000, 'load to run');
    const cutAt = Date.now();
    await proxy.cut();
    await new Promise((r) => setTimeout(r, CUT_S * 1000));
    await proxy.start();
    const backAt = Date.now();
    await waitFor(() => ready.some((r) => r.at > backAt && r.status === 200), 30_000, 'readyz to recover');
    await waitFor(() => decisions.some((d) => d.at > backAt && d.decision !== undefined && d.status === 200), 30_000, 'decisions after the cut');
    await new Promise((r) => setTimeout(r, 2000));
    running = false;
    await Promise.all(loops);

    // No partial state: the audit chain holds, every action row has its audit entry and its event,
    // and each agent's status is what its last action made it.
    const verify = await web.call('GET', '/v1/audit/verify?full=true');
    const rows = await world.db.selectFrom('agent_actions').select(['id', 'agent_id', 'kind', 'created_at']).where('agent_id', 'like', 'pg-%').orderBy('created_at').execute();
    const events = await world.db.selectFrom('outbox').select('payload').where('queue', '=', 'events').execute();
    const eventText = events.map((e) => JSON.stringify(e.payload)).join('\n');
    const withoutEvent = rows.filter((r) => !eventText.includes(r.id));
    const audit = await world.db.selectFrom('audit_log').select(['payload']).execute().catch(() => [] as { payload: unknown }[]);
    const auditText = audit.map((a) => JSON.stringify(a.payload)).join('\n');
    const withoutAudit = auditText ? rows.filter((r) => !auditText.includes(r.id)) : [];
    const agents = await world.db.selectFrom('agents').select(['id', 'status']).where('id', 'like', 'pg-%').execute();
    const wrongStatus = agents.filter((a) => {
      const last = rows.filter((r) => r.agent_id === a.id).at(-1);
      const wanted = !last || last.kind === 'restore' ? 'active' : last.kind === 'contain' ? 'contained' : 'narrowed';
      return a.status !== wanted;
    });
    // Acknowledged actions are all there.
    const acked = actions.filter((a) => a.status >= 200 && a.status < 300 && a.via === 'rest');
    const ackedLost = acked.filter((a) => !rows.some((r) => r.agent_id === a.agent && r.kind === a.kind && r.created_at.getTime() >= a.at - 5000)).length;
    // Every incident notice owed is delivered once things are back.
    const incidents = await world.db.selectFrom('incidents').select('id').where('agent_id', 'like', 'pg-%').execute();
    const keys = incidents.map((i) => `slack:incident:${i.id}`);
    await waitFor(async () => (await slackTally(world, keys)).lost.length === 0, 120_000, 'the incident notices').catch(() => undefined);
    const tally = await slackTally(world, keys);

    const decisionErrors = decisions.filter((d) => d.status >= 500 || d.status === 0);
    const duringCut = decisions.filter((d) => d.at > cutAt + 3000 && d.at < backAt);
    const readyDuring = ready.filter((r) => r.at > cutAt + 1500 && r.at < backAt);
    const refusedDuring = actions.filter((a) => a.at > cutAt && a.at < backAt && (a.status < 200 || a.status >= 300));
    const rest5xx = actions.filter((a) => a.via === 'rest' && a.status >= 500 && a.status !== 503);

    report({
      scenario: `Postgres connections cut for ${CUT_S} s`,
      faults: 1,
      noticesExpected: tally.expected,
      noticesDelivered: tally.delivered,
      noticesDuplicated: tally.duplicates.length,
      actionsAcknowledged: acked.length + actions.filter((a) => a.via === 'slack' && a.status === 200).length,
      actionsLost: ackedLost,
      extra: {
        decisions: decisions.length,
        decisionErrors: decisionErrors.length,
        deniedDuringCut: `${duringCut.filter((d) => d.decision === 'deny').length}/${duringCut.length}`,
        readyz503DuringCut: `${readyDuring.filter((r) => r.status === 503).length}/${readyDuring.length}`,
        actionsRefusedDuringCut: refusedDuring.length,
        withoutEvent: withoutEvent.length,
        wrongStatus: wrongStatus.length,
      },
    });

    expect(web.alive && worker.alive).toBe(true);
    expect(decisionErrors).toEqual([]);
    expect(duringCut.length).toBeGreaterThan(0);
    expect(duringCut.every((d) => d.decision === 'deny')).toBe(true);
    expect(readyDuring.length).toBeGreaterThan(0);
    expect(readyDuring.every((r) => r.status === 503)).toBe(true);
    expect(rest5xx).toEqual([]);
    expect(verify.status).toBe(200);
    expect(verify.body.ok).toBe(true);
    expect(withoutEvent).toEqual([]);
    expect(withoutAudit).toEqual([]);
    expect(wrongStatus).toEqual([]);
    expect(ackedLost).toBe(0);
    expect(tally.lost).toEqual([]);
    expect(tally.duplicates).toEqual([]);
  });
});
