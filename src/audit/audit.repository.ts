import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { DbOrTrx } from '../db/database.js';
import type { AuditRow } from '../db/schema.js';
import { auditEntryHash, auditEntryHashParts, canonicalJson, GENESIS_HASH } from '../domain/audit-chain.js';

export interface AuditInput {
  actor: string;
  action: string;
  subject: string;
  payload: unknown;
  at: Date;
}

/**
 * Appends one entry inside the caller's transaction, in one statement: it locks the head row,
 * takes the next seq, hashes the entry onto the head's hash, inserts it and moves the head.
 *
 * Why it stays one verifiable chain: the head row lock is held from this statement to the
 * commit, so appends are chained in commit order and two writers can never both extend the same
 * previous hash; the hash is the same `auditEntryHash` the verifier recomputes (the content's
 * canonical JSON is built here, with the seq, known only under the lock, spliced in by Postgres).
 *
 * Why it is short: the lock is taken by one of the last statements of the transaction, in one
 * round trip (head, entry and new head together).
 *
 * Registrations and agent actions append through `commitVersionedChanges`
 * (src/agents/versioned-commit.ts) instead: many entries (a batch) under one hold of the same
 * lock, hashed the same way, so both writers extend the one chain.
 */
export async function appendAudit(trx: DbOrTrx, input: AuditInput): Promise<{ seq: string; hash: string }> {
  // Round-trip the payload through JSON so what we hash is exactly what jsonb stores.
  const payload: unknown = JSON.parse(JSON.stringify(input.payload ?? {}));
  const { before, after } = auditEntryHashParts({ at: input.at, actor: input.actor, action: input.action, subject: input.subject, payload });
  const { rows } = await sql<{ seq: string; hash: string }>`
    with head as (
      select seq + 1 as seq, hash as prev from audit_head where id = 1 for update),
    entry as (
      insert into audit_log (seq, at, actor, action, subject, payload, prev_hash, hash)
      select head.seq, ${input.at}, ${input.actor}, ${input.action}, ${input.subject}, ${JSON.stringify(payload)}::jsonb, head.prev,
        encode(sha256(convert_to(head.prev || ${'\n'} || ${before} || head.seq::text || ${after}, 'UTF8')), 'hex')
      from head
      returning seq, hash)
    update audit_head set seq = entry.seq, hash = entry.hash from entry where audit_head.id = 1
    returning entry.seq::text as seq, entry.hash`.execute(trx);
  const row = rows[0];
  if (!row) throw new Error('the audit head row is missing');
  return row;
}

export async function listAudit(
  db: DbOrTrx,
  filter: { subject?: string; beforeSeq?: string; limit: number },
): Promise<AuditRow[]> {
  let q = db.selectFrom('audit_log').selectAll().orderBy('seq', 'desc').limit(filter.limit);
  if (filter.subject) q = q.where('subject', '=', filter.subject);
  if (filter.beforeSeq) q = q.where('seq', '<', filter.beforeSeq);
  return q.execute();
}

export interface AuditVerification {
  ok: boolean;
  /** Entries in the verified chain (from its start: a checkpoint vouches for those before it). */
  entries: number;
  head: { seq: string; hash: string };
  /** The first entry that does not match the chain. */
  firstBroken?: { seq: string; problem: string };
  /** True when the whole chain was walked; false when the walk started at a checkpoint. */
  full: boolean;
  /** Where the walk started: after this entry (0: the start), vouched for by this checkpoint. */
  from: { seq: string; checkpoint: string | null };
  /** Entries walked (hashes recomputed) by this verify. */
  checked: number;
  /** The checkpoint this verify recorded, if it recorded one. */
  checkpointed?: { id: string; seq: string };
}

export interface VerifyOptions {
  /** Walk the whole chain, whatever the checkpoints say (and check the checkpoints against it). */
  full?: boolean;
  batchSize?: number;
  /**
   * Record a checkpoint at the verified head when the chain verifies and at least this many
   * entries lie past the last checkpoint (0: never). Default `CHECKPOINT_EVERY`.
   */
  checkpointEvery?: number;
  /** The time a new checkpoint records. */
  now?: Date;
}

/** A verify records a checkpoint once this many verified entries lie past the last one. */
export const CHECKPOINT_EVERY = 1000;

/**
 * Verifies the chain: from the last checkpoint (its entry must still carry the hash it recorded,
 * and the checkpoints must form an intact chain of their own), or with `full` from the first
 * entry, recomputing every hash and naming the first broken entry. An incremental verify costs
 * what was appended since the last checkpoint; a full one finds tampering before it (run one on a
 * schedule: `runScheduledAuditVerify`).
 *
 * Writers keep appending while we walk, so the head and the rows must be read from one snapshot:
 * a head read before the walk and rows committed during it would look like "entries were removed"
 * (a false tamper alarm). Given a plain database handle, the walk runs in a REPEATABLE READ,
 * read-only transaction (and a checkpoint, if one is due, is written after it, in a transaction of
 * its own); inside a caller's transaction, it is also bounded by the head it read, and records no
 * checkpoint.
 */
export async function verifyAudit(db: DbOrTrx, options: VerifyOptions | number = {}): Promise<AuditVerification> {
  const opts: VerifyOptions = typeof options === 'number' ? { batchSize: options } : options;
  const batchSize = opts.batchSize ?? 2000;
  if (db.isTransaction) {
    const { lastCheckpointSeq: _last, ...inTransaction } = await verifyAuditIn(db, batchSize, false, opts.full ?? false);
    return inTransaction;
  }
  const walked = await db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute((trx) => verifyAuditIn(trx, batchSize, true, opts.full ?? false));
  const { lastCheckpointSeq, ...result } = walked;
  const every = opts.checkpointEvery ?? CHECKPOINT_EVERY;
  if (result.ok && every > 0 && BigInt(result.head.seq) - BigInt(lastCheckpointSeq) >= BigInt(every)) {
    const made = await recordCheckpoint(db, result.head, result.full ? 'full' : 'incremental', opts.now ?? new Date());
    if (made) result.checkpointed = made;
  }
  return result;
}

interface CheckpointRow {
  id: string;
  at: Date;
  audit_seq: string;
  audit_hash: string;
  verified: 'full' | 'incremental';
  prev_hash: string;
  hash: string;
}

/** Each checkpoint's hash covers the previous checkpoint's hash and all of its own content. */
export function checkpointHash(prevHash: string, c: { id: string; at: Date; auditSeq: string; auditHash: string; verified: string }): string {
  return createHash('sha256')
    .update(prevHash)
    .update('\n')
    .update(canonicalJson({ id: c.id, at: c.at.toISOString(), auditSeq: c.auditSeq, auditHash: c.auditHash, verified: c.verified }))
    .digest('hex');
}

/**
 * Appends a checkpoint at `head` unless the last one is already there or past it. Serialized by a
 * transaction-level advisory lock, so two verifies finishing at once cannot both extend the same
 * previous checkpoint. Returns the checkpoint made, if any.
 */
async function recordCheckpoint(db: DbOrTrx, head: { seq: string; hash: string }, verified: 'full' | 'incremental', now: Date): Promise<{ id: string; seq: string } | undefined> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('armalo.audit_checkpoints'))`.execute(trx);
    const last = await trx.selectFrom('audit_checkpoints').select(['id', 'audit_seq', 'hash']).orderBy('id', 'desc').limit(1).executeTakeFirst();
    if (last && BigInt(last.audit_seq) >= BigInt(head.seq)) return undefined;
    const id = (BigInt(last?.id ?? 0) + 1n).toString();
    // Timestamps are stored to the microsecond; hash what the column will hand back (milliseconds are exact).
    const at = new Date(now.getTime());
    const prevHash = last?.hash ?? GENESIS_HASH;
    const hash = checkpointHash(prevHash, { id, at, auditSeq: head.seq, auditHash: head.hash, verified });
    await trx.insertInto('audit_checkpoints').values({ id, at, audit_seq: head.seq, audit_hash: head.hash, verified, prev_hash: prevHash, hash }).execute();
    return { id, seq: head.seq };
  });
}

/** Walks the checkpoints' own chain; names the first one that does not match it. */
async function verifyCheckpoints(db: DbOrTrx): Promise<{ last: CheckpointRow | undefined; all: CheckpointRow[]; problem?: { checkpoint: CheckpointRow; problem: string } }> {
  const all = (await db.selectFrom('audit_checkpoints').selectAll().orderBy('id').execute()) as CheckpointRow[];
  let prev = GENESIS_HASH;
  let expected = 1n;
  for (const c of all) {
    if (BigInt(c.id) !== expected) return { last: undefined, all, problem: { checkpoint: c, problem: `checkpoint ${expected} is missing (found ${c.id}): checkpoints were removed` } };
    if (c.prev_hash !== prev) return { last: undefined, all, problem: { checkpoint: c, problem: `checkpoint ${c.id}: prev_hash does not match the previous checkpoint` } };
    if (checkpointHash(prev, { id: c.id, at: c.at, auditSeq: c.audit_seq, auditHash: c.audit_hash, verified: c.verified }) !== c.hash) {
      return { last: undefined, all, problem: { checkpoint: c, problem: `checkpoint ${c.id} does not match its hash (checkpoint altered)` } };
    }
    prev = c.hash;
    expected++;
  }
  return { last: all[all.length - 1], all };
}

/** The verify itself; also says where the last intact checkpoint is (whether a new one is due). */
async function verifyAuditIn(db: DbOrTrx, batchSize: number, snapshot: boolean, full: boolean): Promise<AuditVerification & { lastCheckpointSeq: string }> {
  const head = await db.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
  const checkpoints = await verifyCheckpoints(db);
  const walkFrom = { seq: '0', hash: GENESIS_HASH, checkpoint: null as string | null };
  const base = { head, full, lastCheckpointSeq: checkpoints.problem ? '0' : (checkpoints.last?.audit_seq ?? '0') };
  if (checkpoints.problem) {
    // A tampered checkpoint vouches for nothing: say so (a full verify still walks the entries).
    if (!full) {
      const c = checkpoints.problem.checkpoint;
      return { ok: false, entries: 0, ...base, from: { seq: '0', checkpoint: null }, checked: 0, firstBroken: { seq: c.audit_seq, problem: checkpoints.problem.problem } };
    }
  } else if (!full && checkpoints.last) {
    const last = checkpoints.last;
    const from = { seq: last.audit_seq, checkpoint: last.id };
    // The checkpoint's own entry must still be there, with the hash it recorded, and its content
    // must still hash to it.
    const anchor = await db.selectFrom('audit_log').selectAll().where('seq', '=', last.audit_seq).executeTakeFirst();
    if (!anchor) {
      return { ok: false, entries: 0, ...base, from, checked: 0, firstBroken: { seq: last.audit_seq, problem: `entry ${last.audit_seq}, recorded by checkpoint ${last.id}, is missing: entries were removed` } };
    }
    const anchorHash = auditEntryHash(anchor.prev_hash, { seq: anchor.seq, at: anchor.at, actor: anchor.actor, action: anchor.action, subject: anchor.subject, payload: anchor.payload });
    if (anchor.hash !== last.audit_hash || anchorHash !== last.audit_hash) {
      return { ok: false, entries: 0, ...base, from, checked: 0, firstBroken: { seq: last.audit_seq, problem: `entry ${last.audit_seq} no longer has the hash checkpoint ${last.id} recorded (entry altered)` } };
    }
    walkFrom.seq = last.audit_seq;
    walkFrom.hash = last.audit_hash;
    walkFrom.checkpoint = last.id;
  }
  const walked = await walkChain(db, head, walkFrom, batchSize, snapshot);
  const result = { ...walked, ...base, from: { seq: walkFrom.seq, checkpoint: walkFrom.checkpoint } };
  // A full walk also checks every checkpoint against the entries it recorded.
  if (full && result.ok && checkpoints.problem) {
    const c = checkpoints.problem.checkpoint;
    return { ...result, ok: false, firstBroken: { seq: c.audit_seq, problem: checkpoints.problem.problem } };
  }
  if (full && result.ok) {
    for (const c of checkpoints.all) {
      if (BigInt(c.audit_seq) > BigInt(head.seq)) break;
      const row = await db.selectFrom('audit_log').select('hash').where('seq', '=', c.audit_seq).executeTakeFirst();
      if (row?.hash !== c.audit_hash) {
        return { ...result, ok: false, firstBroken: { seq: c.audit_seq, problem: `checkpoint ${c.id} recorded another hash for entry ${c.audit_seq} (checkpoint altered)` } };
      }
    }
  }
  return result;
}

/** Recomputes every hash after `from`, up to the head. */
async function walkChain(
  db: DbOrTrx,
  head: { seq: string; hash: string },
  from: { seq: string; hash: string },
  batchSize: number,
  snapshot: boolean,
): Promise<Pick<AuditVerification, 'ok' | 'entries' | 'firstBroken' | 'checked'>> {
  let prevHash = from.hash;
  let expectedSeq = BigInt(from.seq) + 1n;
  let after = from.seq;
  let checked = 0;
  const entriesBefore = Number(from.seq);
  for (;;) {
    const rows = await db.selectFrom('audit_log').selectAll().where('seq', '>', after).where('seq', '<=', head.seq).orderBy('seq').limit(batchSize).execute();
    for (const row of rows) {
      checked++;
      const broken = (problem: string) => ({ ok: false, entries: entriesBefore + checked, checked, firstBroken: { seq: row.seq, problem } });
      if (BigInt(row.seq) !== expectedSeq) return broken(`expected entry ${expectedSeq}, found ${row.seq}: entries are missing`);
      if (row.prev_hash !== prevHash) return broken('prev_hash does not match the previous entry');
      const hash = auditEntryHash(prevHash, { seq: row.seq, at: row.at, actor: row.actor, action: row.action, subject: row.subject, payload: row.payload });
      if (hash !== row.hash) return broken('content does not match its hash (entry altered)');
      prevHash = row.hash;
      expectedSeq++;
      after = row.seq;
    }
    if (rows.length < batchSize) break;
  }
  const entries = entriesBefore + checked;
  // On a snapshot, a row past the head can only have been forged in (appends move the head with
  // them); outside one it may be a write that committed during the walk, so it is not judged.
  if (snapshot && after === head.seq) {
    const beyond = await db.selectFrom('audit_log').select('seq').where('seq', '>', head.seq).orderBy('seq').limit(1).executeTakeFirst();
    if (beyond) return { ok: false, entries, checked, firstBroken: { seq: beyond.seq, problem: `entry ${beyond.seq} lies beyond the head (${head.seq}): entries were inserted outside the chain` } };
  }
  if (after !== head.seq || prevHash !== head.hash) {
    return {
      ok: false,
      entries,
      checked,
      firstBroken: { seq: (BigInt(after) + 1n).toString(), problem: `chain ends at entry ${after} but the head says ${head.seq}: entries were removed` },
    };
  }
  return { ok: true, entries, checked };
}
