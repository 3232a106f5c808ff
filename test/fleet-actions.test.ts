import { describe, expect } from 'vitest';
import { sql } from 'kysely';
import { OTHER_TOKEN, TOKEN, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { decisionOf, textOf } from './support/drive.js';
import type { FakeSlack } from './support/fake-slack.js';
import { fleetId, seedFleet } from './support/fleet.js';
import { inTransaction, waitForLockWait } from './support/locks.js';

// Issue 17, item 3: containment by selector over REST (POST /v1/actions), as one fleet incident.
const POLICY = `
roles:
  ciso: { members: [{ slack: U0CISO }, { slack: U0CISO2 }] }
permissions:
  contain: [ciso]
  narrow: [ciso]
  restore: { roles: [ciso], freshEvaluation: true }
  bulk: { roles: [ciso], confirmAbove: 10 }
channels:
  incidents: { slack: C0INCIDENTS }
`;

const PLATFORM_TOKEN = 'tok_platform_only_0123456789abcdef';
const it = appTest({
  policy: POLICY,
  slack: true,
  env: { ARMALO_API_TOKENS: `platform:${TOKEN},automation:${OTHER_TOKEN},runtime:${PLATFORM_TOKEN}:platform` },
  appOptions: { relayPollMs: 200 },
});
let app: TestApp;
let slack: FakeSlack;

/** Twelve payment agents (critical), two that only write to the CRM, one contained on its own before. */
const PAY = Array.from({ length: 12 }, (_, i) => `pay-${String(i + 1).padStart(2, '0')}`);
const SELECTOR = { scope: 'payments:*', riskTier: 'critical' };

const agent = (grants: { scope: string; keepInContainment?: boolean }[], riskTier = 'critical') => ({ name: 'Fleet test agent', owner: 'vendor@example.com', riskTier, grants });
const status = async (id: string): Promise<string> => (await app.call('GET', `/v1/agents/${id}`)).body.status;
const counts = async () => {
  const db = app.db;
  const [fleet, head] = await Promise.all([
    db.selectFrom('fleet_incidents').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    db.selectFrom('audit_head').select('seq').executeTakeFirstOrThrow(),
  ]);
  return { fleet: Number(fleet.n), auditSeq: head.seq };
};

it.beforeAll(async ({ app: started, slack: fake }) => {
  app = started;
  slack = fake;
  const put = async (id: string, body: unknown) => expect((await app.call('PUT', `/v1/agents/${id}`, body)).status).toBe(201);
  await Promise.all([
    ...PAY.map((id) => put(id, agent([{ scope: 'payments:transfer' }, { scope: 'mail:send', keepInContainment: true }]))),
    ...['crm-01', 'crm-02'].map((id) => put(id, agent([{ scope: 'crm:write' }]))),
    // Holds every scope (`*`): it can use payments too, so a payments selector catches it.
    put('pay-wild', agent([{ scope: '*' }])),
    put('pay-solo', agent([{ scope: 'payments:refund' }])),
    put('pay-gone', agent([{ scope: 'payments:transfer' }])),
  ]);
  // Contained on its own, by another incident.
  expect((await app.call('POST', '/v1/agents/pay-solo/actions', { action: 'contain', reason: 'its own incident' })).status).toBe(201);
  // Decommissioned: never matches.
  expect((await app.call('DELETE', '/v1/agents/pay-gone')).status).toBe(200);
});

describe('POST /v1/actions', () => {
  it('a dry run answers the count and a sample and changes nothing', async () => {
    const before = await counts();
    const res = await app.call('POST', '/v1/actions', { selector: SELECTOR, action: 'contain', reason: 'vendor compromised', dryRun: true });
    expect(res.status).toBe(200);
    expect(res.body.count).toBe(13);
    expect(res.body.sample).toEqual([...PAY.slice(0, 10)]);
    expect(res.body.matched).toBe(14);
    expect(res.body.unchanged).toEqual([{ agentId: 'pay-solo', reason: 'already contained' }]);
    expect(await counts()).toEqual(before);
    expect(await status('pay-01')).toBe('active');
  });

  it('refuses bad selectors with 400 and changes nothing', async () => {
    const before = await counts();
    const bad = [
      { selector: {}, action: 'contain', reason: 'x' },
      { selector: { team: 'payments' }, action: 'contain', reason: 'x' },
      { selector: { scope: 'Payments:**!' }, action: 'contain', reason: 'x' },
      { selector: { riskTier: 'extreme' }, action: 'contain', reason: 'x' },
      { selector: { scope: 'payments:*' }, action: 'revoke', reason: 'x' },
      { selector: { scope: 'payments:*' }, action: 'narrow', reason: 'x' },
      { selector: { scope: 'payments:*' }, action: 'contain' },
      { selector: 'payments:*', action: 'contain', reason: 'x' },
    ];
    for (const body of bad) {
      const res = await app.call('POST', '/v1/actions', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(JSON.stringify(res.body)).not.toContain('Internal');
    }
    expect((await app.call('POST', '/v1/actions', { selector: {}, action: 'contain', reason: 'x' })).body.error.message ?? '').toBeTruthy();
    // A key the client relies on is refused when it is unusable, not ignored.
    for (const key of ['', 'k'.repeat(201), 'two words']) {
      const res = await app.call('POST', '/v1/actions', { selector: SELECTOR, action: 'contain', reason: 'x' }, { headers: { 'idempotency-key': key } });
      expect(res.status, JSON.stringify(key)).toBe(400);
      expect(res.body.error.message).toContain('Idempotency-Key');
    }
    expect(await counts()).toEqual(before);
  });

  it('only an admin token may act on a fleet', async () => {
    const body = { selector: SELECTOR, action: 'contain', reason: 'x' };
    expect((await app.call('POST', '/v1/actions', body, { token: PLATFORM_TOKEN })).status).toBe(403);
    expect((await app.call('POST', '/v1/actions', body, { token: null })).status).toBe(401);
    expect(await status('pay-01')).toBe('active');
  });

  it('contains every matching agent as one fleet incident, and every replica denies them', async ({ startApp }) => {
    const replica = await startApp({ env: { ARMALO_ROLE: 'web' } });
    // The replica allows first (its view is warm), so the wait below is for the change to reach it.
    expect((await decisionOf(replica, 'pay-01', 'payments:transfer')).decision).toBe('allow');

    const res = await app.call('POST', '/v1/actions', { selector: SELECTOR, action: 'contain', reason: 'vendor SDK compromised', idempotencyKey: 'fleet-contain-1' });
    expect(res.status).toBe(201);
    const expected = [...PAY, 'pay-wild'].sort();
    expect(res.body).toMatchObject({ count: 13, agents: expected, dryRun: false, unchangedCount: 1 });
    expect(res.body.incidentId).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body.version).toMatch(/^\d+$/);
    const incidentId: string = res.body.incidentId;

    // Every agent denies on the other instance (waiting for the condition, not for a time).
    await waitFor(async () => {
      for (const id of expected) if ((await decisionOf(replica, id, 'payments:transfer')).decision !== 'deny') return false;
      return true;
    }, 10_000, 'every contained agent to be denied on the replica');
    // Kept in containment: still usable. Not selected: untouched. Decommissioned: untouched.
    expect((await decisionOf(replica, 'pay-01', 'mail:send')).decision).toBe('allow');
    expect(await status('crm-01')).toBe('active');
    expect(await status('pay-gone')).toBe('decommissioned');

    // Each agent's action recorded as a single contain would be, linked to the ONE fleet incident
    // (written right after the hold the answer came with).
    await app.fleet.settled();
    const db = app.db;
    const fleetRows = await db.selectFrom('fleet_incidents').selectAll().execute();
    expect(fleetRows).toHaveLength(1);
    expect(fleetRows[0]).toMatchObject({ id: incidentId, action: 'contain', selector_key: 'scope:payments:* risk:critical', agent_count: 13, status: 'open' });
    expect(fleetRows[0]!.agent_ids).toEqual(expected);
    const actions = await db.selectFrom('agent_actions').select(['agent_id', 'kind', 'incident_id']).where('fleet_incident_id', '=', incidentId).orderBy('agent_id').execute();
    expect(actions.map((a) => a.agent_id)).toEqual(expected);
    expect(actions.every((a) => a.kind === 'contain' && a.incident_id)).toBe(true);
    const linked = await db.selectFrom('incidents').select('agent_id').where('fleet_incident_id', '=', incidentId).execute();
    expect(linked).toHaveLength(13);
    const audited = await db.selectFrom('audit_log').select('subject').where('action', '=', 'agent.contain').where(sql<boolean>`payload->>'fleetIncidentId' = ${incidentId}`).execute();
    expect(audited.map((a) => a.subject).sort()).toEqual(expected);
    expect((await app.call('GET', '/v1/audit/verify')).body.ok).toBe(true);
    // The fleet incident reads like an incident.
    const detail = await app.call('GET', `/v1/incidents/${incidentId}`);
    expect(detail.status).toBe(200);
    expect(detail.body).toMatchObject({ id: incidentId, kind: 'fleet', status: 'open', action: 'contain', selectorText: 'scope:payments:* risk:critical', count: 13, heldNow: 13 });
    // The agent's own view shows a contain in force.
    expect(await status('pay-07')).toBe('contained');

    // One notice in the incidents channel, naming the selector and the count; no notice per agent.
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => textOf(p.args).includes('scope:payments:* risk:critical')), 10_000, 'the fleet notice');
    const posts = slack.posts('C0INCIDENTS').filter((p) => textOf(p.args).includes('scope:payments:* risk:critical'));
    expect(posts).toHaveLength(1);
    expect(textOf(posts[0]!.args)).toContain('13 agents');
    expect(slack.posts('C0INCIDENTS').some((p) => textOf(p.args).includes('pay-03') && textOf(p.args).includes('Incident: '))).toBe(false);

    // A retried request (same key) answers the first run; nothing is applied twice.
    const again = await app.call('POST', '/v1/actions', { selector: SELECTOR, action: 'contain', reason: 'vendor SDK compromised', idempotencyKey: 'fleet-contain-1' });
    expect(again.status).toBe(201);
    expect(again.body).toMatchObject({ incidentId, count: 13, replayed: true });
    // The key is the token's own: another admin token's same key is a new run (nothing left to contain).
    const otherToken = await app.call('POST', '/v1/actions', { selector: SELECTOR, action: 'contain', reason: 'vendor SDK compromised', idempotencyKey: 'fleet-contain-1' }, { token: OTHER_TOKEN });
    expect(otherToken.status).toBe(201);
    expect(otherToken.body).toMatchObject({ count: 0, incidentId: null });
    expect(otherToken.body.replayed).toBeUndefined();
    // Without a key, a second run finds them all contained already: reported, not contained again.
    const second = await app.call('POST', '/v1/actions', { selector: SELECTOR, action: 'contain', reason: 'again' });
    expect(second.body).toMatchObject({ count: 0, incidentId: null, agents: [], unchangedCount: 14 });
    expect(await db.selectFrom('fleet_incidents').select('id').execute()).toHaveLength(1);
    expect(await db.selectFrom('agent_actions').select('id').where('agent_id', '=', 'pay-01').where('kind', '=', 'contain').execute()).toHaveLength(1);
  });

  it('restore by the same selector lifts exactly that fleet incident; freshEvaluation keeps the unevaluated held and lists them', async () => {
    const incidentId = (await app.db.selectFrom('fleet_incidents').select('id').executeTakeFirstOrThrow()).id;
    // Fresh evaluations for all but two agents.
    const observedAt = new Date(Date.now() + 1000).toISOString();
    for (const id of [...PAY.slice(2), 'pay-wild']) {
      const res = await app.call('POST', `/v1/agents/${id}/evaluations`, { id: `eval-${id}`, dimension: 'safety', passed: true, observedAt, source: 'fleet test' });
      expect(res.status).toBeLessThan(300);
    }
    const dry = await app.call('POST', '/v1/actions', { selector: SELECTOR, action: 'restore', reason: 'vendor patched', dryRun: true });
    expect(dry.body).toMatchObject({ count: 11, incidentId, stillHeldCount: 2 });

    const res = await app.call('POST', '/v1/actions', { selector: SELECTOR, action: 'restore', reason: 'vendor patched' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ count: 11, incidentId, stillHeldCount: 2 });
    expect(res.body.stillHeld.map((s: { agentId: string }) => s.agentId)).toEqual(['pay-01', 'pay-02']);
    expect(res.body.stillHeld[0].reason).toContain('freshEvaluation');
    expect(await status('pay-05')).toBe('active');
    expect(await status('pay-01')).toBe('contained');
    // Contained by another incident: not this restore's to lift.
    expect(await status('pay-solo')).toBe('contained');
    expect((await app.db.selectFrom('fleet_incidents').select('status').executeTakeFirstOrThrow()).status).toBe('open');

    // Once evaluated, a second restore lifts the rest and closes the fleet incident.
    for (const id of ['pay-01', 'pay-02']) await app.call('POST', `/v1/agents/${id}/evaluations`, { id: `eval2-${id}`, dimension: 'safety', passed: true, observedAt: new Date(Date.now() + 2000).toISOString(), source: 'fleet test' });
    const rest = await app.call('POST', '/v1/actions', { selector: SELECTOR, action: 'restore', reason: 'evaluated now' });
    expect(rest.body).toMatchObject({ count: 2, agents: ['pay-01', 'pay-02'], stillHeldCount: 0 });
    expect((await app.db.selectFrom('fleet_incidents').select('status').executeTakeFirstOrThrow()).status).toBe('closed');
    expect(await status('pay-solo')).toBe('contained');
    // Nothing is left to restore by that selector.
    expect((await app.call('POST', '/v1/actions', { selector: SELECTOR, action: 'restore', reason: 'again' })).status).toBe(409);
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => textOf(p.args).includes('Resolved: fleet incident')) || slack.updates().some((u) => textOf(u.args).includes('Resolved: fleet incident')), 10_000, 'the fleet notice to show it resolved');
  });

  it('answers at most 100 agent ids however many it contains', async () => {
    await seedFleet(app.db, 150);
    const res = await app.call('POST', '/v1/actions', { selector: { scope: 'crm:read' }, action: 'contain', reason: 'crm vendor compromised' });
    expect(res.status).toBe(201);
    // Every tenth seeded agent was contained already; pay-wild holds `*`, so it can use crm:read too.
    expect(res.body.count).toBe(136);
    expect(res.body.agents).toHaveLength(100);
    expect(res.body.agents[0]).toBe(fleetId(1));
    expect(res.body.unchangedCount).toBe(15);
    expect(await status(fleetId(150))).toBe('contained');
    expect((await app.call('GET', '/v1/audit/verify?full=true')).body.ok).toBe(true);
  });

  it('with a ttl, every agent of the fleet action is lifted by itself when it runs out', async () => {
    for (const id of ['ttl-1', 'ttl-2']) await app.call('PUT', `/v1/agents/${id}`, { ...agent([{ scope: 'tickets:write' }]), owner: 'ttl-owner@example.com' });
    const res = await app.call('POST', '/v1/actions', { selector: { owner: 'TTL-Owner@example.com' }, action: 'contain', reason: 'short hold', ttl: 1 });
    expect(res.body).toMatchObject({ count: 2, agents: ['ttl-1', 'ttl-2'] });
    // Each agent's contain carries the ttl (its status is not read here: one second may be over already on a loaded machine).
    await app.fleet.settled();
    const held = await app.db.selectFrom('agent_actions').select(['agent_id', 'kind', 'expires_at']).where('fleet_incident_id', '=', res.body.incidentId).orderBy('agent_id').execute();
    expect(held.map((h) => [h.agent_id, h.kind, h.expires_at !== null])).toEqual([['ttl-1', 'contain', true], ['ttl-2', 'contain', true]]);
    await waitFor(async () => (await status('ttl-1')) === 'active' && (await status('ttl-2')) === 'active', 15_000, 'the ttl to lift both');
    await waitFor(async () => (await decisionOf(app, 'ttl-2', 'tickets:write')).decision === 'allow', 10_000, 'the lift to reach the view');
    // The fleet incident ends with the last lift, as a single incident does, and its notice says so.
    const incidentId: string = res.body.incidentId;
    await waitFor(async () => (await app.call('GET', `/v1/incidents/${incidentId}`)).body.status === 'closed', 15_000, 'the fleet incident to close');
    const detail = (await app.call('GET', `/v1/incidents/${incidentId}`)).body;
    expect(detail).toMatchObject({ kind: 'fleet', status: 'closed', closedBy: 'system:ttl', heldNow: 0, expired: 2 });
    const resolved = () => [...slack.posts('C0INCIDENTS'), ...slack.updates()].some((p) => textOf(p.args).includes('Resolved: fleet incident') && textOf(p.args).includes('owner:ttl-owner@example.com'));
    await waitFor(() => resolved(), 10_000, 'the fleet notice to show it resolved');
    // Nothing is left to restore by that selector.
    expect((await app.call('POST', '/v1/actions', { selector: { owner: 'ttl-owner@example.com' }, action: 'restore', reason: 'late' })).status).toBe(409);
  });

  it('a retried restore by selector (same key) answers the first result and lifts nothing twice; another token\'s same key is its own', async () => {
    for (const id of ['rtr-1', 'rtr-2']) await app.call('PUT', `/v1/agents/${id}`, { ...agent([{ scope: 'docs:write' }]), owner: 'retry-owner@example.com' });
    const selector = { owner: 'retry-owner@example.com' };
    expect((await app.call('POST', '/v1/actions', { selector, action: 'contain', reason: 'docs vendor' })).status).toBe(201);
    const observedAt = new Date(Date.now() + 1000).toISOString();
    for (const id of ['rtr-1', 'rtr-2']) await app.call('POST', `/v1/agents/${id}/evaluations`, { id: `eval-${id}`, dimension: 'safety', passed: true, observedAt, source: 'fleet test' });
    const restore = (key: string, token?: string) => app.call('POST', '/v1/actions', { selector, action: 'restore', reason: 'patched' }, { headers: { 'idempotency-key': key }, token });
    const before = await counts();
    const [a, b] = await Promise.all([restore('fleet-restore-1'), restore('fleet-restore-1')]);
    expect([a.status, b.status]).toEqual([201, 201]);
    const first = a.body.replayed ? b : a;
    expect(first.body).toMatchObject({ count: 2, agents: ['rtr-1', 'rtr-2'] });
    expect((a.body.replayed ? a : b).body).toEqual({ ...first.body, replayed: true });
    // Two restore audit entries (one per agent), not four.
    expect(Number((await counts()).auditSeq) - Number(before.auditSeq)).toBe(2);
    expect(await status('rtr-1')).toBe('active');
    // Later, the same answer again; without the key, or with another token, it is a new request: nothing is left (409).
    expect((await restore('fleet-restore-1')).body).toEqual({ ...first.body, replayed: true });
    expect((await restore('fleet-restore-1', OTHER_TOKEN)).status).toBe(409);
    expect((await app.call('POST', '/v1/actions', { selector, action: 'restore', reason: 'patched' })).status).toBe(409);
    expect(Number((await counts()).auditSeq) - Number(before.auditSeq)).toBe(2);
  });

  it('GET /v1/incidents lists fleet incidents beside the agents\' incidents, newest first, with their selector and count', async () => {
    const db = app.db;
    // The ttl's fleet incident (the test before) has closed by itself; nothing changes under the listing now.
    await waitFor(async () => (await db.selectFrom('fleet_incidents').select('id').where('status', '=', 'open').where('ttl_ms', 'is not', null).execute()).length === 0, 15_000, 'the ttl fleet incident to close');
    const fleets = await db.selectFrom('fleet_incidents').select(['id', 'selector_key', 'agent_count', 'status']).orderBy('opened_at', 'desc').execute();
    expect(fleets.length).toBeGreaterThanOrEqual(3);
    // Every page, followed to the end with a small limit: each incident once, newest first.
    const seen: { id: string; kind: string; openedAt: string }[] = [];
    let cursor: string | null = null;
    do {
      const page = await app.call('GET', `/v1/incidents?limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.items);
      cursor = page.body.nextCursor;
    } while (cursor);
    const agentIncidents = await db.selectFrom('incidents').select('id').execute();
    expect(seen).toHaveLength(agentIncidents.length + fleets.length);
    expect(new Set(seen.map((i) => i.id)).size).toBe(seen.length);
    expect(seen.map((i) => i.openedAt)).toEqual([...seen.map((i) => i.openedAt)].sort().reverse());
    const listed = seen.filter((i) => i.kind === 'fleet') as unknown as { id: string; selectorText: string; count: number; status: string; selector: unknown; heldNow: number }[];
    expect(listed.map((i) => i.id)).toEqual(fleets.map((f) => f.id));
    const first = listed.find((i) => i.selectorText === 'scope:payments:* risk:critical')!;
    expect(first).toMatchObject({ selector: SELECTOR, count: 13, status: 'closed', heldNow: 0, openedWith: 'contain' });
    // Each agent incident a fleet action opened names it.
    const linked = seen.find((i) => i.kind === 'agent' && (i as unknown as { agentId: string }).agentId === 'pay-03') as unknown as { fleetIncidentId: string };
    expect(linked.fleetIncidentId).toBe(first.id);

    // Filters: status applies to both; an agent filter, or an agent token, lists that agent's incidents only.
    const open = await app.call('GET', '/v1/incidents?status=open&limit=200');
    expect(open.body.items.filter((i: { kind: string }) => i.kind === 'fleet').map((i: { id: string }) => i.id)).toEqual(fleets.filter((f) => f.status === 'open').map((f) => f.id));
    expect(open.body.items.every((i: { status: string }) => i.status === 'open')).toBe(true);
    const ofAgent = await app.call('GET', '/v1/incidents?agentId=pay-03');
    expect(ofAgent.body.items.every((i: { kind: string; agentId: string }) => i.kind === 'agent' && i.agentId === 'pay-03')).toBe(true);
  });
});

describe('a single restore under restore.freshEvaluation', () => {
  it('is checked again under the agent lock: an incident opened after the check needs its own evaluation (409, still held)', async () => {
    const id = 'fresh-race';
    expect((await app.call('PUT', `/v1/agents/${id}`, agent([{ scope: 'crm:write' }]))).status).toBe(201);
    expect((await app.call('POST', `/v1/agents/${id}/actions`, { action: 'contain', reason: 'first incident' })).status).toBe(201);
    const evaluated = await app.call('POST', `/v1/agents/${id}/evaluations`, { id: `${id}-eval-1`, dimension: 'safety', passed: true, observedAt: new Date().toISOString(), source: 'redteam' });
    expect(evaluated.status).toBe(201);
    await inTransaction(app.db, async (other) => {
      // A writer holds the agent (a ttl lift, then a new contain) while the restore checks the
      // evaluation (fresh for the first incident) and waits for the row.
      await sql`select id from agents where id = ${id} for update`.execute(other);
      const restore = app.call('POST', `/v1/agents/${id}/actions`, { action: 'restore', reason: 'all clear' });
      await waitForLockWait(app.db, 'the restore to wait for the agent row');
      await sql`update incidents set status = 'closed', closed_at = now(), closed_by = 'system:ttl' where agent_id = ${id} and status = 'open'`.execute(other);
      await sql`
        insert into incidents (id, agent_id, status, opened_by_action_id, opened_at)
        select gen_random_uuid(), ${id}, 'open', a.id, now() + interval '1 second' from agent_actions a where a.agent_id = ${id} and a.lifted_at is null`.execute(other);
      await sql`commit`.execute(other);
      const answer = await restore;
      expect(answer.status).toBe(409);
      expect(answer.body.error.message).toContain('Restore needs a fresh evaluation');
    });
    expect(await status(id)).toBe('contained');
    expect((await decisionOf(app, id, 'crm:write')).decision).toBe('deny');
  });
});
