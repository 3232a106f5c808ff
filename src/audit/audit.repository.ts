import { sql } from 'kysely';
import type { DbOrTrx } from '../db/database.js';
import type { AuditRow } from '../db/schema.js';
import { auditEntryHash } from '../domain/audit-chain.js';

export interface AuditInput {
  actor: string;
  action: string;
  subject: string;
  payload: unknown;
  at: Date;
}

/**
 * Appends one entry inside the caller's transaction. The head row is locked, so appends are
 * chained in commit order and two writers can never both extend the same previous hash.
 */
export async function appendAudit(trx: DbOrTrx, input: AuditInput): Promise<{ seq: string; hash: string }> {
  const head = await trx.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).forUpdate().executeTakeFirstOrThrow();
  const seq = (BigInt(head.seq) + 1n).toString();
  // Round-trip the payload through JSON so what we hash is exactly what jsonb stores.
  const payload: unknown = JSON.parse(JSON.stringify(input.payload ?? {}));
  const hash = auditEntryHash(head.hash, { seq, at: input.at, actor: input.actor, action: input.action, subject: input.subject, payload });
  // The entry and the new head in one statement (one round trip inside the transaction).
  await sql`
    with entry as (
      insert into audit_log (seq, at, actor, action, subject, payload, prev_hash, hash)
      values (${seq}, ${input.at}, ${input.actor}, ${input.action}, ${input.subject}, ${JSON.stringify(payload)}::jsonb, ${head.hash}, ${hash})
      returning seq)
    update audit_head set seq = ${seq}, hash = ${hash} where id = 1 and exists (select 1 from entry)`.execute(trx);
  return { seq, hash };
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
  entries: number;
  head: { seq: string; hash: string };
  /** The first entry that does not match the chain. */
  firstBroken?: { seq: string; problem: string };
}

/**
 * Walks the whole chain in order, recomputing every hash, and names the first broken entry.
 *
 * Writers keep appending while we walk, so the head and the rows must be read from one snapshot:
 * a head read before the walk and rows committed during it would look like "entries were removed"
 * (a false tamper alarm). Given a plain database handle, the walk runs in a REPEATABLE READ,
 * read-only transaction; inside a caller's transaction, it is also bounded by the head it read.
 */
export async function verifyAudit(db: DbOrTrx, batchSize = 1000): Promise<AuditVerification> {
  if (db.isTransaction) return verifyAuditIn(db, batchSize, false);
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute((trx) => verifyAuditIn(trx, batchSize, true));
}

async function verifyAuditIn(db: DbOrTrx, batchSize: number, snapshot: boolean): Promise<AuditVerification> {
  const head = await db.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
  let prevHash = '0'.repeat(64);
  let expectedSeq = 1n;
  let after = '0';
  let entries = 0;
  for (;;) {
    const rows = await db.selectFrom('audit_log').selectAll().where('seq', '>', after).where('seq', '<=', head.seq).orderBy('seq').limit(batchSize).execute();
    for (const row of rows) {
      entries++;
      const broken = (problem: string): AuditVerification => ({ ok: false, entries, head, firstBroken: { seq: row.seq, problem } });
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
  // On a snapshot, a row past the head can only have been forged in (appends move the head with
  // them); outside one it may be a write that committed during the walk, so it is not judged.
  if (snapshot && after === head.seq) {
    const beyond = await db.selectFrom('audit_log').select('seq').where('seq', '>', head.seq).orderBy('seq').limit(1).executeTakeFirst();
    if (beyond) return { ok: false, entries, head, firstBroken: { seq: beyond.seq, problem: `entry ${beyond.seq} lies beyond the head (${head.seq}): entries were inserted outside the chain` } };
  }
  if (after !== head.seq || prevHash !== head.hash) {
    return {
      ok: false,
      entries,
      head,
      firstBroken: { seq: (BigInt(after) + 1n).toString(), problem: `chain ends at entry ${after} but the head says ${head.seq}: entries were removed` },
    };
  }
  return { ok: true, entries, head };
}
