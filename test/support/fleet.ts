import { sql, type Kysely } from 'kysely';
import type { Database } from '../../src/db/schema.js';
import { auditEntryHash, GENESIS_HASH } from '../../src/domain/audit-chain.js';

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
