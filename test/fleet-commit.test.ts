import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createDb, type Db } from '../src/db/database.js';
import { systemClock } from '../src/core/clock.js';
import { verifyAudit } from '../src/audit/audit.repository.js';
import { FleetService } from '../src/fleet/fleet.service.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { fleetId, seedFleet } from './support/fleet.js';

// Issue 17, item 3: a fleet action writes a part of its agents per statement; the audit chain, the
// versions and every row must come out as if it were one (here 45 agents, 7 per statement).
let database: TestDatabase;
let db: Db;
let fleet: FleetService;
const published: bigint[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb(database.url, { max: 2 });
  await seedFleet(db, 50);
  fleet = new FleetService({
    db,
    clock: systemClock,
    publisher: { publishChanged: async (_agentId, version) => void published.push(version) },
    restoreRule: () => ({ secondPerson: false, freshEvaluation: false }),
    writePart: 7,
  });
});

afterAll(async () => {
  await db.destroy();
  await database.drop();
});

describe('a fleet action written in parts', () => {
  it('contains every agent with its own version, action, incident, audit entry and event; the chain verifies', async () => {
    const before = await db.selectFrom('audit_head').select(['seq']).executeTakeFirstOrThrow();
    const res = await fleet.apply({ action: 'contain', selector: { scope: 'payments:*' }, reason: 'vendor compromised', actor: 'api:test', ttlMs: 3_600_000 });
    // The answer comes with the hold; each agent's records follow in a second commit.
    await fleet.settled();
    // Every tenth seeded agent was contained already.
    expect(res.count).toBe(45);
    const ids = res.agents;
    expect(ids).toHaveLength(45);
    const agents = await db.selectFrom('agents').select(['id', 'status', 'version']).where('id', 'in', ids).orderBy('version').execute();
    expect(agents.every((a) => a.status === 'contained')).toBe(true);
    const versions = agents.map((a) => BigInt(a.version));
    expect(new Set(versions).size).toBe(45);
    // The hold's version, then one per agent above it; the replicas hear of both commits.
    const held = BigInt(res.version!);
    expect(versions.every((v) => v > held)).toBe(true);
    expect(published).toEqual([held, versions[versions.length - 1]]);
    expect(await db.selectFrom('fleet_incidents').select(['hold_version', 'hold_released_version']).where('id', '=', res.incidentId!).executeTakeFirstOrThrow()).toEqual({
      hold_version: res.version,
      hold_released_version: versions[versions.length - 1]!.toString(),
    });
    const actions = await db.selectFrom('agent_actions').select(['agent_id', 'incident_id', 'result', 'expires_at']).where('fleet_incident_id', '=', res.incidentId).execute();
    expect(actions).toHaveLength(45);
    for (const a of actions) {
      const version = agents.find((x) => x.id === a.agent_id)!.version;
      expect(a.result).toMatchObject({ statusAfter: 'contained', version: String(version), incidentId: a.incident_id });
      expect(a.expires_at).not.toBeNull();
    }
    const incidents = await db.selectFrom('incidents').select('agent_id').where('fleet_incident_id', '=', res.incidentId).where('status', '=', 'open').execute();
    expect(incidents).toHaveLength(45);
    const entries = await db.selectFrom('audit_log').select(['seq', 'subject', 'payload']).where(sql<boolean>`seq > ${before.seq}::bigint`).orderBy('seq').execute();
    // The hold's entry (the set by its digest), then each agent's.
    expect(entries.map((e) => e.subject)).toEqual([res.incidentId, ...ids]);
    expect(entries[0]!.payload).toMatchObject({ count: 45, agentIdsSha256: createHash('sha256').update(ids.join('\n')).digest('hex'), version: res.version });
    expect(entries.every((e) => (e.payload as { fleetIncidentId?: string }).fleetIncidentId === res.incidentId)).toBe(true);
    const outbox = await db.selectFrom('outbox').select(['job_name']).execute();
    expect(outbox.filter((o) => o.job_name === 'agent.contained')).toHaveLength(45);
    expect(outbox.filter((o) => o.job_name === 'lift-action')).toHaveLength(45);
    expect(outbox.filter((o) => o.job_name === 'fleet-update')).toHaveLength(2);
    expect(outbox.filter((o) => o.job_name === 'fleet-records')).toHaveLength(1);
    const verified = await verifyAudit(db, { full: true });
    expect(verified).toMatchObject({ ok: true });
    const head = await db.selectFrom('audit_head').select(['seq']).executeTakeFirstOrThrow();
    expect(BigInt(head.seq) - BigInt(before.seq)).toBe(46n);
  });

  it('restores exactly that set in parts and closes the fleet incident; the chain still verifies', async () => {
    const open = await db.selectFrom('fleet_incidents').select('id').where('status', '=', 'open').executeTakeFirstOrThrow();
    const res = await fleet.restore({ action: 'restore', selector: { scope: 'payments:*' }, reason: 'patched', actor: 'api:test' });
    expect(res).toMatchObject({ count: 45, incidentId: open.id, stillHeldCount: 0 });
    const statuses = await db.selectFrom('agents').select(['id', 'status']).where('id', 'like', 'fleet-%').orderBy('id').execute();
    // The seeded containments (every tenth agent) are another incident's: they stay.
    expect(statuses.filter((s) => s.status === 'contained').map((s) => s.id)).toEqual([10, 20, 30, 40, 50].map(fleetId));
    expect((await db.selectFrom('fleet_incidents').select('status').where('id', '=', open.id).executeTakeFirstOrThrow()).status).toBe('closed');
    expect(await db.selectFrom('incidents').select('id').where('fleet_incident_id', '=', open.id).where('status', '=', 'open').execute()).toHaveLength(0);
    expect(await verifyAudit(db, { full: true })).toMatchObject({ ok: true });
  });
});
