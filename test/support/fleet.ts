import { sql, type Kysely } from 'kysely';
import type { Database } from '../../src/db/schema.js';
import { auditEntryHash, GENESIS_HASH } from '../../src/domain/audit-chain.js';

/** A policy for fleet actions over REST: one role that may contain and restore (no second person). */
export const FLEET_POLICY = `
roles:
  ciso: { members: [{ slack: U0CISO }] }
permissions:
  contain: [ciso]
  restore: [ciso]
  bulk: { roles: [ciso], confirmAbove: 10 }
`;

/** The id of the i-th seeded agent (1-based): zero-padded, so id order is number order. */
export const fleetId = (i: number) => `fleet-${String(i).padStart(6, '0')}`;

/**
 * Writes `count` agents straight into the tables (not through the API: a test or bench of 100,000
 * agents cannot wait for 100,000 requests): three grants each (`payments:transfer` with a limit,
 * `crm:read`, `mail:send` kept in containment), every tenth agent contained, every fifth with a
 * trust score and an evaluation. Versions 1..count, and the version sequence moved past them.
 */
export async function seedFleet(db: Kysely<Database>, count: number): Promise<void> {
  await sql`
    insert into agents (id, name, owner, risk_tier, status, version, created_by, created_at, updated_by, updated_at)
    select 'fleet-' || lpad(i::text, 6, '0'), 'Fleet agent ' || i, 'owner' || (i % 200) || '@example.com',
      (array['low','medium','high'])[1 + i % 3], case when i % 10 = 0 then 'contained' else 'active' end,
      i, 'api:seed', now(), 'api:seed', now()
    from generate_series(1, ${count}::int) as i`.execute(db);
  await sql`
    insert into grants (agent_id, scope, constraints, keep_in_containment, granted_by, granted_at)
    select a.id, s.scope, s.c::jsonb, s.k, 'api:seed', now()
    from agents a cross join (values ('payments:transfer', '{"maxAmount": 10000}', false), ('crm:read', '{}', false), ('mail:send', '{}', true)) as s(scope, c, k)
    where a.id like 'fleet-%'`.execute(db);
  await sql`
    insert into agent_actions (id, agent_id, kind, scopes, reason, actor, touched_grants, created_at)
    select gen_random_uuid(), a.id, 'contain', '[]'::jsonb, 'seeded containment', 'api:seed',
      (select jsonb_agg(jsonb_build_object('grantId', g.id, 'scope', g.scope) order by g.scope) from grants g where g.agent_id = a.id and not g.keep_in_containment),
      now()
    from agents a where a.id like 'fleet-%' and a.status = 'contained'`.execute(db);
  await sql`
    insert into evaluations (id, agent_id, dimension, passed, score, observed_at, source, received_at)
    select gen_random_uuid(), a.id, 'accuracy', null, 0.9, now() - interval '2 days', 'seed', now()
    from agents a where a.id like 'fleet-%' and a.version % 5 = 0`.execute(db);
  await sql`
    insert into trust_scores (agent_id, score, tier, source, inputs, computed_at)
    select a.id, 720, 'gold', 'computed', '{}'::jsonb, now()
    from agents a where a.id like 'fleet-%' and a.version % 5 = 0`.execute(db);
  await sql`select setval('permission_version_seq', greatest(${count}::bigint, (select coalesce(max(version), 1) from agents)))`.execute(db);
  await sql`analyze agents; analyze grants; analyze agent_actions`.execute(db).catch(() => undefined);
}

/**
 * Appends `count` audit entries straight into the table, hashed here in order (a valid chain on
 * top of whatever the chain holds), in batches of one multi-row insert, and moves the head.
 */
export async function seedAuditEntries(db: Kysely<Database>, count: number, batch = 5000): Promise<void> {
  const head = await db.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
  let seq = BigInt(head.seq);
  let prev = head.seq === '0' ? GENESIS_HASH : head.hash;
  const at = new Date('2026-01-01T00:00:00.000Z');
  for (let done = 0; done < count; ) {
    const n = Math.min(batch, count - done);
    const rows = [];
    for (let k = 0; k < n; k++) {
      seq++;
      const entry = { seq: seq.toString(), at, actor: 'api:seed', action: 'agent.contain', subject: fleetId(Number(seq % 1000n) + 1), payload: { reason: `seeded entry ${seq}` } };
      const hash = auditEntryHash(prev, entry);
      rows.push({ seq: entry.seq, at, actor: entry.actor, action: entry.action, subject: entry.subject, payload: JSON.stringify(entry.payload), prev_hash: prev, hash });
      prev = hash;
    }
    await db.insertInto('audit_log').values(rows).execute();
    done += n;
  }
  await db.updateTable('audit_head').set({ seq: seq.toString(), hash: prev }).where('id', '=', 1).execute();
}

/**
 * A few agents whose rows are awkward to read back (ids returned): text that COPY must escape (tabs,
 * newlines, backslashes, non-ASCII), NULLs, timestamps with 0 to 6 fractional digits, constraints
 * with arrays, a decommissioned agent, an agent with no grants, actions and grants no longer in force
 * (which must not be read), several scores and evaluations (the latest score, the newest evidence),
 * and a 300,000-character reason, longer than one network read, so its row arrives in several chunks.
 * Their versions follow whatever the sequence holds.
 */
export async function seedOddAgents(db: Kysely<Database>): Promise<string[]> {
  const agent = async (id: string, name: string, owner: string, extra: { decommissionedAt?: string; decommissionedBy?: string | null; reason?: string | null } = {}) => {
    await sql`
      insert into agents (id, name, owner, risk_tier, status, version, created_by, created_at, updated_by, updated_at, decommissioned_at, decommissioned_by, decommission_reason)
      values (${id}, ${name}, ${owner}, 'critical', 'active', nextval('permission_version_seq'), 'api:seed', now(), 'api:seed', '2026-03-04 05:06:07.5+00',
        ${extra.decommissionedAt ?? null}, ${extra.decommissionedBy ?? null}, ${extra.reason ?? null})`.execute(db);
  };
  const grant = async (agentId: string, scope: string, constraints: unknown, o: { keep?: boolean; expiresAt?: string | null; grantedBy?: string; grantedAt?: string; removed?: boolean } = {}) => {
    const { rows } = await sql<{ id: string }>`
      insert into grants (agent_id, scope, constraints, keep_in_containment, expires_at, granted_by, granted_at, removed_at, removed_by)
      values (${agentId}, ${scope}, ${JSON.stringify(constraints)}::jsonb, ${o.keep ?? false}, ${o.expiresAt ?? null}, ${o.grantedBy ?? 'api:seed'},
        ${o.grantedAt ?? '2026-01-01 00:00:00+00'}, ${o.removed ? sql`now()` : null}, ${o.removed ? 'api:seed' : null})
      returning id::text`.execute(db);
    return rows[0]!.id;
  };
  const action = async (agentId: string, kind: string, scopes: string[], reason: string, touched: { grantId: string; scope: string }[], o: { createdAt?: string; expiresAt?: string | null; lifted?: boolean } = {}) => {
    await sql`
      insert into agent_actions (id, agent_id, kind, scopes, reason, actor, touched_grants, created_at, expires_at, lifted_at)
      values (gen_random_uuid(), ${agentId}, ${kind}, ${JSON.stringify(scopes)}::jsonb, ${reason}, 'slack:Ü\\ser', ${JSON.stringify(touched)}::jsonb,
        ${o.createdAt ?? '2026-02-01 00:00:00.123+00'}, ${o.expiresAt ?? null}, ${o.lifted ? sql`now()` : null})`.execute(db);
  };

  await agent('odd-escapes', 'Tab\there, newline\nthere, back\\slash \\N, “quotes”, émoji 🚀', 'zoë\\x@exämple.com');
  const pay = await grant('odd-escapes', 'payments:transfer', { maxAmount: 12.5, currencies: ['EUR', 'USD'], recipientDomains: ['tab\tand\\back.example'] }, {
    expiresAt: '2031-01-02 03:04:05.6+00',
    grantedBy: 'api:Ünïcode\\',
    grantedAt: '2026-01-01 00:00:00.000001+00',
  });
  await grant('odd-escapes', 'crm:read', {}, { grantedAt: '2026-01-01 00:00:00.999999+00', keep: true });
  await grant('odd-escapes', 'a:first', { minTier: 'gold' }, { grantedAt: '2026-01-01 00:00:00.12+00' });
  await grant('odd-escapes', 'mail:send', {}, { removed: true });
  await action('odd-escapes', 'narrow', ['payments:*'], `long\treason ${'x\\y\n'.repeat(75_000)}`, [{ grantId: pay, scope: 'payments:transfer' }], { expiresAt: '2030-06-07 08:09:10.111+00' });
  await action('odd-escapes', 'contain', [], 'lifted already', [], { lifted: true });
  await action('odd-escapes', 'restore', [], 'a restore is never in force', []);

  await agent('odd-decommissioned', 'Retired', 'owner@example.com', { decommissionedAt: '2026-05-05 05:05:05+00', decommissionedBy: null, reason: null });
  await grant('odd-decommissioned', 'crm:read', {});

  await agent('odd-no-grants', 'Nothing granted', 'owner@example.com');
  await action('odd-no-grants', 'revoke', [], 'kill switch', [], { createdAt: '2026-02-02 00:00:00+00' });
  await action('odd-no-grants', 'contain', [], 'before the revoke', [], { createdAt: '2026-02-01 00:00:00+00' });

  await agent('odd-scores', 'Scored', 'owner@example.com');
  await grant('odd-scores', 'crm:read', {});
  for (const [score, tier, at] of [
    [300, 'bronze', '2026-01-01 00:00:00+00'],
    [650, 'silver', '2026-03-01 00:00:00+00'],
    [900, 'platinum', '2026-03-01 00:00:00+00'],
  ] as const) {
    await sql`insert into trust_scores (agent_id, score, tier, source, inputs, computed_at) values ('odd-scores', ${score}, ${tier}, 'computed', '{}'::jsonb, ${at})`.execute(db);
  }
  for (const at of ['2026-01-01 00:00:00+00', '2026-04-01 12:34:56.123456+00', '2026-02-01 00:00:00+00']) {
    await sql`insert into evaluations (id, agent_id, dimension, passed, score, observed_at, source, received_at) values (gen_random_uuid(), 'odd-scores', 'accuracy', true, 0.5, ${at}, 'seed', now())`.execute(db);
  }
  return ['odd-escapes', 'odd-decommissioned', 'odd-no-grants', 'odd-scores'];
}
