import { createHash, randomUUID } from 'node:crypto';
import { sql, type RawBuilder } from 'kysely';
import type { z } from 'zod';
import type { DbOrTrx } from '../db/database.js';
import { auditEntryHashParts } from '../domain/audit-chain.js';
import type { DomainEvent, EventType } from '../domain/events.js';
import type { AuditInput } from '../audit/audit.repository.js';
import { JOBS, type JobName, type JobPayload, type QueueName } from '../queue/job-contracts.js';
import { OUTBOX_NOTIFY_CHANNEL } from '../outbox/outbox-relay.js';
import { tracing, type TraceCarrier } from '../observability/tracing.js';

/** One outbox row, its payload already checked against its job contract. */
export interface OutboxRow {
  id: string;
  queue: QueueName;
  jobName: JobName;
  payload: unknown;
  runAt: Date;
  createdAt: Date;
  /** With tracing on, the writer's trace context: the relay and the job continue that trace. */
  traceContext?: TraceCarrier | undefined;
  /**
   * Written as already published: a domain event in a process that is its own outbox relay and has
   * no events webhook (the relay would only mark it published; see `AgentServiceDeps.eventsRecordedOnly`).
   */
  publishedAt?: Date;
}

/** An outbox row for a job, checked against its contract now (as `addOutboxJob` does). */
export function outboxRow<N extends JobName>(jobName: N, payload: JobPayload<N>, now: Date, runAt: Date = now, id: string = randomUUID()): OutboxRow {
  const contract: { queue: QueueName; payload: z.ZodType } = JOBS[jobName];
  const checked = contract.payload.safeParse(payload);
  if (!checked.success) throw new Error(`outbox job ${jobName}: the payload does not match its contract: ${checked.error.issues[0]?.message ?? 'invalid'}`);
  return { id, queue: contract.queue, jobName, payload, runAt, createdAt: now, traceContext: tracing ? tracing.capture() : undefined };
}

/** A domain event as an outbox row: its id is the row id, the job id and the webhook delivery id (as `emitEvent`). */
export function eventRow<T extends Record<string, unknown>>(type: EventType, data: { agentId: string } & T, now: Date): OutboxRow {
  const event: DomainEvent<T> = { id: randomUUID(), type, createdAt: now.toISOString(), data };
  return outboxRow(type, event as JobPayload<typeof type>, now, now, event.id);
}

/**
 * One agent's change, written except for its version: what it records once it gets one. What does
 * not depend on the version is given as a value (prepared before the lock); what does, as a
 * function of it (built under the lock: keep it cheap).
 */
export interface VersionedChange {
  agentId: string;
  audit: AuditInput | ((version: bigint) => AuditInput);
  outbox: OutboxRow[] | ((version: bigint) => OutboxRow[]);
}

/** An audit entry prepared before the lock: everything but the seq and the previous hash. */
export interface PreparedEntry {
  input: AuditInput;
  payloadJson: string;
  before: string;
  after: string;
}

/** The insert of a batch's outbox rows, one array per column: a CTE body of both commit paths. */
function insertOutboxRows(rows: readonly OutboxRow[]) {
  return sql`insert into outbox (id, queue, job_name, payload, run_at, created_at, trace_context, published_at)
      select * from unnest(${rows.map((r) => r.id)}::uuid[], ${rows.map((r) => r.queue)}::text[], ${rows.map((r) => r.jobName)}::text[],
        ${rows.map((r) => JSON.stringify(r.payload))}::jsonb[], ${rows.map((r) => r.runAt)}::timestamptz[], ${rows.map((r) => r.createdAt)}::timestamptz[],
        ${rows.map((r) => (r.traceContext ? JSON.stringify(r.traceContext) : null))}::jsonb[], ${rows.map((r) => r.publishedAt ?? null)}::timestamptz[])`;
}

export function prepareEntry(input: AuditInput): PreparedEntry {
  // Round-trip the payload through JSON so what we hash is exactly what jsonb stores.
  const payloadJson = JSON.stringify(input.payload ?? {});
  const payload: unknown = JSON.parse(payloadJson);
  const { before, after } = auditEntryHashParts({ at: input.at, actor: input.actor, action: input.action, subject: input.subject, payload });
  return { input, payloadJson, before, after };
}

/** The audit head as read under its lock, and the permission versions drawn under it (one per change, in order). */
export interface DrawnHead {
  seq: bigint;
  hash: string;
  versions: bigint[];
}

/** Locks the audit head and draws `n` permission versions under that lock. Call it after every other row lock. */
export async function lockHeadAndDrawVersions(trx: DbOrTrx, n: number): Promise<DrawnHead> {
  if (!trx.isTransaction) throw new Error('permission versions must be taken inside the transaction that commits them');
  const { rows } = await sql<{ seq: string; hash: string; versions: string[] | null }>`
    select head.seq::text as seq, head.hash,
      (select array_agg(v.n::text order by v.i) from
         (select i, nextval('permission_version_seq') as n from generate_series(1, ${n}::int + 0 * head.seq) as i) as v) as versions
    from (select seq, hash from audit_head where id = 1 for update) as head`.execute(trx);
  const head = rows[0];
  if (!head) throw new Error('the audit head row is missing');
  return { seq: BigInt(head.seq), hash: head.hash, versions: (head.versions ?? []).map((v) => BigInt(v)) };
}

/**
 * Commits the end of a batch of permission changes in two statements under the audit head lock:
 * the first locks the head and draws one permission version per change; the second writes every
 * audit entry (chained onto the head, in order), moves the head, sets each agent's version and
 * writes every outbox row. Call it last in the transaction, after every other write: the head lock
 * is then held from here to the COMMIT only, and one lock hold and one WAL flush serve the batch.
 * When no change depends on its version (registrations), both happen in one statement
 * (`commitValueChanges`, Postgres hashing the chain), so the lock is held for one round trip.
 * With `drawn`, the caller's last statement already took the head lock and drew the versions (an
 * action: `writeActionRows`), and only the second statement runs.
 *
 * Why versions stay in commit order: they are drawn under the head lock, which every
 * permission-changing transaction takes and keeps until it ends (see `nextPermissionVersion`); so
 * a batch draws only after every transaction holding a lower version has ended, and all of a
 * batch's versions become visible at once, at its commit.
 *
 * Why the audit chain stays one tamper-evident chain: the entries are hashed here onto the head's
 * hash as read under its lock, each onto the one before, with the same text `auditEntryHash` (the
 * verifier) hashes: seq, time, actor, action, subject and payload. No other writer can extend the
 * head until this commits, and the head moves to the last entry in the same transaction, so the
 * batch's entries are consecutive links of the one chain, in commit order; changing, removing or
 * inserting any of them breaks the hash of the entry after it (and the head's).
 */
export async function commitVersionedChanges(trx: DbOrTrx, changes: readonly VersionedChange[], drawn?: DrawnHead): Promise<bigint[]> {
  if (!trx.isTransaction) throw new Error('permission versions must be taken inside the transaction that commits them');
  if (changes.length === 0) return [];
  const ids = changes.map((c) => c.agentId);
  if (new Set(ids).size !== ids.length) throw new Error('a batch of versioned changes names an agent twice');
  if (drawn && drawn.versions.length !== changes.length) throw new Error(`${drawn.versions.length} version(s) drawn for ${changes.length} change(s)`);
  // Everything that can be done without the lock is done first: canonical JSON of every entry
  // that does not depend on its version.
  const early = changes.map((c) => (typeof c.audit === 'function' ? undefined : prepareEntry(c.audit)));
  // Nothing depends on the version but the agents' version column (registrations): one statement.
  if (!drawn && changes.every((c, i) => early[i] && typeof c.outbox !== 'function')) {
    return commitValueChanges(trx, ids, early as PreparedEntry[], changes.flatMap((c) => c.outbox as OutboxRow[]));
  }

  // 1. The head lock, and one version per change drawn under it (in change order), unless the
  // caller's last write drew them (an action: `writeActionRows`). The versions are drawn by a
  // subquery that refers to the locked row, so they are drawn after the lock.
  const head = drawn ?? (await lockHeadAndDrawVersions(trx, changes.length));
  const versions = head.versions;
  const prepared = changes.map((c, i) => early[i] ?? prepareEntry((c.audit as (v: bigint) => AuditInput)(versions[i]!)));
  const rows = changes.flatMap((c, i) => (typeof c.outbox === 'function' ? c.outbox(versions[i]!) : c.outbox));

  // 2. The chain: each entry hashed onto the previous one (sha256 of prev + "\n" + canonical text).
  let prev = head.hash;
  let seq = head.seq;
  const seqs: string[] = [];
  const prevs: string[] = [];
  const hashes: string[] = [];
  for (const p of prepared) {
    seq += 1n;
    const s = seq.toString();
    const hash = createHash('sha256').update(prev).update('\n').update(p.before).update(s).update(p.after).digest('hex');
    seqs.push(s);
    prevs.push(prev);
    hashes.push(hash);
    prev = hash;
  }

  // 3. One statement: entries, head, agent versions, outbox rows (and the relay's wake-up on commit).
  const { rows: done } = await sql<{ versioned: number; entries: number }>`
    with entries as (
      insert into audit_log (seq, at, actor, action, subject, payload, prev_hash, hash)
      select * from unnest(${seqs}::bigint[], ${prepared.map((p) => p.input.at)}::timestamptz[], ${prepared.map((p) => p.input.actor)}::text[],
        ${prepared.map((p) => p.input.action)}::text[], ${prepared.map((p) => p.input.subject)}::text[], ${prepared.map((p) => p.payloadJson)}::jsonb[],
        ${prevs}::text[], ${hashes}::text[])
      returning 1),
    moved as (
      update audit_head set seq = ${seq.toString()}::bigint, hash = ${prev} where id = 1 returning 1),
    versioned as (
      update agents set version = v.version
      from unnest(${ids}::text[], ${versions.map((v) => v.toString())}::bigint[]) as v(id, version)
      -- The redundant = any(…): an index lookup even while the table's statistics lag behind a burst of writes.
      where agents.id = v.id and agents.id = any(${ids}::text[])
      returning 1),
    jobs as (
      ${insertOutboxRows(rows)}
      returning published_at)
    select (select count(*) from versioned)::int as versioned, (select count(*) from entries)::int as entries,
      (select count(*) from moved)::int as moved,
      (select pg_notify(${OUTBOX_NOTIFY_CHANNEL}, '') from jobs where published_at is null limit 1) as notified`.execute(trx);
  const result = done[0];
  if (!result || result.versioned !== ids.length || result.entries !== prepared.length) {
    throw new Error(`versioned commit wrote ${result?.versioned ?? 0} of ${ids.length} agent versions and ${result?.entries ?? 0} of ${prepared.length} audit entries`);
  }
  return versions;
}

/**
 * `commitVersionedChanges` when nothing a change writes depends on its version (registrations: the
 * audit entry and the event carry no version): the lock, the versions, the chain, the head, the
 * agents' versions and the outbox rows in ONE statement, so the head lock is held for one round
 * trip and the commit. Same lock, same order and the same hash as the two-statement path:
 * - the head row is read `for update`, and the versions are drawn by a subquery that refers to it
 *   (`generate_series(1, n + 0 * head.seq)`), so they are drawn after the lock is held;
 * - the entries are chained in a recursive part, each hashed by Postgres onto the one before it,
 *   starting from the locked head's hash, with the text `auditEntryHash` (the verifier) hashes:
 *   sha256 of prev + "\n" + the canonical text with the seq spliced in (as `appendAudit` does);
 * - the head moves to the last entry in the same statement.
 */
async function commitValueChanges(trx: DbOrTrx, ids: readonly string[], prepared: readonly PreparedEntry[], rows: readonly OutboxRow[]): Promise<bigint[]> {
  const n = ids.length;
  const { rows: done } = await sql<{ versions: string[]; versioned: number; entries: number; moved: number }>`
    with recursive ${chainedTail(prepared, rows)},
    versioned as (
      update agents set version = d.version
      from unnest(${ids}::text[]) with ordinality as a(id, i) join drawn d on d.i = a.i
      where agents.id = a.id and agents.id = any(${ids}::text[])
      returning 1)
    select ${tailCounts}, (select count(*) from versioned)::int as versioned`.execute(trx);
  const result = done[0];
  if (!result || result.versioned !== n || result.entries !== n || result.moved !== 1 || result.versions.length !== n) {
    throw new Error(`versioned commit wrote ${result?.versioned ?? 0} of ${n} agent versions and ${result?.entries ?? 0} of ${n} audit entries`);
  }
  return result.versions.map((v) => BigInt(v));
}

/**
 * The CTEs of the one-statement tail (`with recursive` goes before them): `head` (the audit head,
 * locked), `drawn` (one version per entry under that lock: `i` from 1, `version`), `chain`, the
 * audit `entries`, the head `moved`, and the outbox `jobs`. The statement that includes them writes
 * the agents' versions from `drawn` (joined on `i`, the change's position) and selects
 * `tailCounts`. See `commitValueChanges` for why versions and chain stay in commit order.
 */
export function chainedTail(prepared: readonly PreparedEntry[], rows: readonly OutboxRow[], gate?: RawBuilder<boolean>) {
  const n = prepared.length;
  // With a gate that is false, the head is neither locked nor read, so nothing of the tail is
  // written: no versions, no entries, no head move, no outbox rows.
  return sql`head as (select seq, hash from audit_head where id = 1 ${gate ? sql`and ${gate}` : sql``} for update),
    drawn as (
      select row_number() over (order by v.n) as i, v.n as version
      from (select nextval('permission_version_seq') as n from head, generate_series(1, ${n}::int + 0 * head.seq)) as v),
    chain(i, seq, prev, hash) as (
      select 0::bigint, head.seq, null::text, head.hash from head
      union all
      select c.i + 1, c.seq + 1, c.hash,
        encode(sha256(convert_to(c.hash || ${'\n'} || (${prepared.map((p) => p.before)}::text[])[c.i + 1] || (c.seq + 1)::text || (${prepared.map((p) => p.after)}::text[])[c.i + 1], 'UTF8')), 'hex')
      from chain c where c.i < ${n}::int),
    entries as (
      insert into audit_log (seq, at, actor, action, subject, payload, prev_hash, hash)
      select c.seq, e.at, e.actor, e.action, e.subject, e.payload, c.prev, c.hash
      from chain c
      join unnest(${prepared.map((p) => p.input.at)}::timestamptz[], ${prepared.map((p) => p.input.actor)}::text[], ${prepared.map((p) => p.input.action)}::text[],
        ${prepared.map((p) => p.input.subject)}::text[], ${prepared.map((p) => p.payloadJson)}::jsonb[]) with ordinality as e(at, actor, action, subject, payload, i) on e.i = c.i
      returning 1),
    moved as (
      update audit_head set seq = last.seq, hash = last.hash
      from (select seq, hash from chain order by i desc limit 1) as last
      where audit_head.id = 1
      returning 1),
    jobs as (
      ${insertOutboxRows(rows)}
      where exists (select 1 from head)
      returning published_at)`;
}

/** The columns a statement with `chainedTail` selects: the versions drawn, the entries written, the head moved (and the relay's wake-up on commit). */
export const tailCounts = sql`(select array_agg(d.version::text order by d.i) from drawn d) as versions,
      (select count(*) from entries)::int as entries, (select count(*) from moved)::int as moved,
      (select pg_notify(${OUTBOX_NOTIFY_CHANNEL}, '') from jobs where published_at is null limit 1) as notified`;
