import { sql } from 'kysely';
import type { DbOrTrx } from '../db/database.js';
import type { Agent, TouchedGrant } from '../domain/agent.js';
import { auditEntryHash } from '../domain/audit-chain.js';
import type { AuditInput } from '../audit/audit.repository.js';
import type { DrawnHead, OutboxRow } from '../agents/versioned-commit.js';
import { OUTBOX_NOTIFY_CHANNEL } from '../outbox/outbox-relay.js';

/**
 * The commit of a fleet action: thousands of agents' changes in a statement per 1,000 agents. The
 * first statement locks the audit head and draws one permission version per agent; each next one
 * writes a part of every row of the action: the agents' action rows (each answer with its
 * version), the per-agent incidents it opens or closes, the actions it lifts, each agent's status
 * and version, one audit entry per agent chained onto the head, the head, and the outbox rows.
 *
 * Rows go as one JSON document per table (`jsonb_to_recordset`): one parameter and one native
 * `JSON.stringify` each, where a Postgres array parameter per column costs an escaping pass over
 * every element, and a row of parameters per row runs into Postgres's 65,535-parameter limit.
 *
 * Why versions stay in commit order and the chain one tamper-evident chain: the versions are drawn
 * under the audit head lock, which every permission-changing transaction takes and holds until it
 * ends (see `commitVersionedChanges`); each entry is hashed with `auditEntryHash` (the verifier's
 * function) onto the previous one, starting from the head as read under that lock, over the payload
 * as jsonb stores it (round-tripped through JSON); the head moves to the last entry in the same
 * statement. Nothing else can append between them, and changing, removing or inserting an entry
 * breaks the hash of the one after it.
 */

export interface FleetActionRow {
  id: string;
  agentId: string;
  kind: 'narrow' | 'contain' | 'restore';
  scopes: string[];
  ttlMs: number | null;
  expiresAt: Date | null;
  touched: TouchedGrant[];
  incidentId: string | null;
  /** The answer a single action stores (with its version). */
  result: unknown;
}

export interface FleetWrite {
  fleetIncidentId: string;
  actor: string;
  reason: string;
  now: Date;
  /**
   * When the actions began, if before `now` (a held containment: its hold's time). The actions'
   * `created_at` and the incidents' `opened_at`; the audit entries and the agents' `updated_at` are `now`.
   */
  since?: Date;
  /** The audit head under its lock and one permission version per agent (`lockHeadAndDrawVersions`). */
  head: DrawnHead;
  actions: FleetActionRow[];
  opened: { id: string; agentId: string; actionId: string }[];
  closed: string[];
  lifts: { actionId: string; byActionId: string }[];
  states: { id: string; status: Agent['status']; version: bigint }[];
  /** In chain order; `at` and `actor` are the action's. */
  audit: Omit<AuditInput, 'at' | 'actor'>[];
  outbox: OutboxRow[];
}

/** Rows per statement: one statement per 1,000 agents keeps each document a megabyte or two. */
export const FLEET_WRITE_PART = 1000;

/** One part's statement, built (hashed and serialised) and not yet sent. */
interface PreparedPart {
  run: (trx: DbOrTrx) => Promise<void>;
  /** The chain's head after this part. */
  head: { seq: bigint; hash: string };
}

/**
 * Writes a fleet action's rows (see above), a part of every list per statement; the chain goes on
 * from one part to the next (the head moves with each). Throws unless every row was written.
 *
 * Pipelined: the next part is hashed and serialised here while Postgres writes the one before (the
 * chain needs only the hash of the part before, which is computed here, not read back), so this
 * process's CPU and Postgres' overlap instead of taking turns. The statements still run one after
 * another on the transaction's connection, in chain order.
 */
export async function writeFleet(trx: DbOrTrx, w: FleetWrite, part = FLEET_WRITE_PART): Promise<void> {
  const parts = Math.max(1, Math.ceil(Math.max(w.actions.length, w.opened.length, w.closed.length, w.lifts.length, w.states.length, w.audit.length, w.outbox.length) / part));
  const prepare = (i: number, head: { seq: bigint; hash: string }): PreparedPart => {
    const cut = <T>(xs: readonly T[]) => xs.slice(i * part, (i + 1) * part);
    return preparePart({
      ...w,
      head: { ...head, versions: [] },
      actions: cut(w.actions),
      opened: cut(w.opened),
      closed: cut(w.closed),
      lifts: cut(w.lifts),
      states: cut(w.states),
      audit: cut(w.audit),
      // The last part carries the rows beyond the agents' own (the fleet's notices).
      outbox: i === parts - 1 ? w.outbox.slice(i * part) : cut(w.outbox),
    });
  };
  let next = prepare(0, { seq: w.head.seq, hash: w.head.hash });
  for (let i = 0; i < parts; i++) {
    const current = next;
    const running = current.run(trx);
    if (i + 1 < parts) {
      // Let the statement go out on the socket before the CPU-bound build of the next one.
      await new Promise<void>((resolve) => setImmediate(resolve));
      try {
        next = prepare(i + 1, current.head);
      } catch (err) {
        await running.catch(() => undefined);
        throw err;
      }
    }
    await running;
  }
}

function preparePart(w: FleetWrite): PreparedPart {
  const at = w.now;
  const since = w.since ?? w.now;
  let seq = w.head.seq;
  let prev = w.head.hash;
  // Each payload is serialised once: hashed as jsonb will hand it back (parsed from that text), and
  // spliced as that text into the document of entries.
  const entries: string[] = [];
  for (const e of w.audit) {
    seq += 1n;
    const payloadJson = JSON.stringify(e.payload ?? {});
    const hash = auditEntryHash(prev, { seq: seq.toString(), at, actor: w.actor, action: e.action, subject: e.subject, payload: JSON.parse(payloadJson) as unknown });
    entries.push(`{"seq":"${seq}","action":${JSON.stringify(e.action)},"subject":${JSON.stringify(e.subject)},"prev_hash":"${prev}","hash":"${hash}","payload":${payloadJson}}`);
    prev = hash;
  }
  const json = (rows: unknown[]) => JSON.stringify(rows);
  const actions = json(
    w.actions.map((a) => ({
      id: a.id,
      agent_id: a.agentId,
      kind: a.kind,
      scopes: a.scopes,
      ttl_ms: a.ttlMs,
      expires_at: a.expiresAt,
      touched_grants: a.touched,
      incident_id: a.incidentId,
      result: a.result,
    })),
  );
  const opened = json(w.opened.map((o) => ({ id: o.id, agent_id: o.agentId, action_id: o.actionId })));
  const lifts = json(w.lifts.map((l) => ({ id: l.actionId, by: l.byActionId })));
  const states = json(w.states.map((s) => ({ id: s.id, status: s.status, version: s.version.toString() })));
  const outbox = json(
    w.outbox.map((r) => ({ id: r.id, queue: r.queue, job_name: r.jobName, payload: r.payload, run_at: r.runAt, created_at: r.createdAt, trace_context: r.traceContext ?? null })),
  );
  const query = sql<{ actions: number; opened: number; closed: number; lifted: number; states: number; entries: number; moved: number; jobs: number }>`
    with acted as (
      insert into agent_actions (id, agent_id, kind, scopes, reason, actor, ttl_ms, expires_at, touched_grants, created_at, incident_id, result, fleet_incident_id)
      select x.id, x.agent_id, x.kind, x.scopes, ${w.reason}, ${w.actor}, x.ttl_ms, x.expires_at, x.touched_grants, ${since}::timestamptz, x.incident_id, x.result, ${w.fleetIncidentId}::uuid
      from jsonb_to_recordset(${actions}::jsonb) as x(id uuid, agent_id text, kind text, scopes jsonb, ttl_ms bigint, expires_at timestamptz, touched_grants jsonb, incident_id uuid, result jsonb)
      returning 1),
    opened as (
      insert into incidents (id, agent_id, status, opened_by_action_id, opened_at, fleet_incident_id)
      select x.id, x.agent_id, 'open', x.action_id, ${since}::timestamptz, ${w.fleetIncidentId}::uuid
      from jsonb_to_recordset(${opened}::jsonb) as x(id uuid, agent_id text, action_id uuid)
      returning 1),
    closed as (
      update incidents set status = 'closed', closed_at = ${at}, closed_by = ${w.actor}
      where id = any(${w.closed}::uuid[]) and status = 'open'
      returning 1),
    lifted as (
      update agent_actions set lifted_at = ${at}, lifted_by = ${w.actor}, lift_reason = ${w.reason}, lifted_by_action_id = x.by
      from jsonb_to_recordset(${lifts}::jsonb) as x(id uuid, by uuid)
      where agent_actions.id = x.id and agent_actions.id = any(${w.lifts.map((l) => l.actionId)}::uuid[]) and agent_actions.lifted_at is null
      returning 1),
    states as (
      update agents set status = x.status, version = x.version, updated_by = ${w.actor}, updated_at = ${at}
      from jsonb_to_recordset(${states}::jsonb) as x(id text, status text, version bigint)
      -- The redundant = any(…) (as in the lifts above): an index lookup per agent of this part, not a
      -- hash join over every agent, whatever Postgres's statistics say of the tables.
      where agents.id = x.id and agents.id = any(${w.states.map((st) => st.id)}::text[])
      returning 1),
    entries as (
      insert into audit_log (seq, at, actor, action, subject, payload, prev_hash, hash)
      select x.seq, ${at}::timestamptz, ${w.actor}, x.action, x.subject, x.payload, x.prev_hash, x.hash
      from jsonb_to_recordset(${`[${entries.join(',')}]`}::jsonb) as x(seq bigint, action text, subject text, payload jsonb, prev_hash text, hash text)
      returning 1),
    moved as (
      update audit_head set seq = ${seq.toString()}::bigint, hash = ${prev} where id = 1 and ${entries.length}::int > 0 returning 1),
    jobs as (
      insert into outbox (id, queue, job_name, payload, run_at, created_at, trace_context)
      select x.id, x.queue, x.job_name, x.payload, x.run_at, x.created_at, x.trace_context
      from jsonb_to_recordset(${outbox}::jsonb) as x(id uuid, queue text, job_name text, payload jsonb, run_at timestamptz, created_at timestamptz, trace_context jsonb)
      returning 1)
    select (select count(*) from acted)::int as actions, (select count(*) from opened)::int as opened, (select count(*) from closed)::int as closed,
      (select count(*) from lifted)::int as lifted, (select count(*) from states)::int as states, (select count(*) from entries)::int as entries,
      (select count(*) from moved)::int as moved, (select count(*) from jobs)::int as jobs,
      (select pg_notify(${OUTBOX_NOTIFY_CHANNEL}, '') from jobs limit 1) as notified`;
  const expected = { actions: w.actions.length, opened: w.opened.length, closed: w.closed.length, lifted: w.lifts.length, states: w.states.length, entries: entries.length, moved: entries.length > 0 ? 1 : 0, jobs: w.outbox.length };
  return {
    head: { seq, hash: prev },
    run: async (trx) => {
      const { rows } = await query.execute(trx);
      const done = rows[0];
      for (const [key, n] of Object.entries(expected)) {
        if (!done || done[key as keyof typeof expected] !== n) throw new Error(`fleet commit wrote ${JSON.stringify(done)}, expected ${JSON.stringify(expected)}`);
      }
    },
  };
}
