import { createHash } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import { addOutboxJob } from '../outbox/outbox.repository.js';
import { verifyAudit, type AuditVerification } from './audit.repository.js';

/** The job that tells the incidents channel the audit chain is broken (queue `notify`). */
export const AUDIT_BROKEN_NOTICE_JOB = 'audit-broken-notice';
/** The scheduled full verify itself (queue `timers`, a job scheduler of the worker role). */
export const AUDIT_VERIFY_FULL_JOB = 'audit-verify-full';
export const AUDIT_VERIFY_FULL_EVERY_MS = 24 * 3_600_000;

export interface AuditBrokenNotice {
  /** The first entry that does not match the chain. */
  firstBrokenSeq: string;
  problem: string;
  /** ISO time of the verify that found it. */
  at: string;
}

/**
 * The scheduled full verify (issue 17): walks the whole audit chain, whatever the checkpoints say,
 * so tampering before the last checkpoint (which an ordinary verify no longer walks) is still
 * found. A broken chain is reported by an outbox job `audit-broken-notice` (its notice goes to the
 * incidents channel), once per distinct break: the job's id is derived from the broken entry and
 * the problem, so a schedule that finds the same break every run does not post it every run.
 *
 * Scheduling: run it from the worker role once a day (a BullMQ job scheduler on the `timers`
 * queue, like `sweep` and `trust-daily`), e.g. `every: 24h`; its cost is one walk of the chain
 * (about 30 s per million entries on two cores; see bench/README.md, "scale").
 */
export async function runScheduledAuditVerify(deps: { db: Db; clock: Clock }): Promise<{ verification: AuditVerification; alerted: boolean }> {
  const { db, clock } = deps;
  const verification = await verifyAudit(db, { full: true, now: clock.now() });
  if (verification.ok || !verification.firstBroken) return { verification, alerted: false };
  const now = clock.now();
  const notice: AuditBrokenNotice = { firstBrokenSeq: verification.firstBroken.seq, problem: verification.firstBroken.problem, at: now.toISOString() };
  const id = breakId(notice);
  const alerted = await db.transaction().execute(async (trx) => {
    const known = await trx.selectFrom('outbox').select('id').where('id', '=', id).executeTakeFirst();
    if (known) return false;
    await addOutboxJob(trx, { jobName: AUDIT_BROKEN_NOTICE_JOB, payload: notice }, now, id);
    return true;
  });
  return { verification, alerted };
}

/** A UUID-shaped id that is the same for the same break (entry and problem). */
function breakId(n: AuditBrokenNotice): string {
  const h = createHash('sha256').update(`audit-broken\n${n.firstBrokenSeq}\n${n.problem}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)}${h.slice(18, 20)}-${h.slice(20, 32)}`;
}
