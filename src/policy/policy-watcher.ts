import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { sql } from 'kysely';
import type { Redis } from 'ioredis';
import type { Clock } from '../core/clock.js';
import type { Db } from '../db/database.js';
import { appendAudit } from '../audit/audit.repository.js';
import { addOutboxJob } from '../outbox/outbox.repository.js';
import type { Logger } from '../observability/logger.js';
import { parsePolicyText, PolicyError } from './load-policy.js';
import { summarizePolicyChange } from './policy-diff.js';
import type { PolicyHolder } from './policy-holder.js';
import type { Policy } from './policy.schema.js';
import type { JobName, JobPayload } from '../queue/job-contracts.js';

/** The notify job that posts "the policy file is invalid" in the incidents channel (once per file content). */
export const POLICY_INVALID_NOTICE_JOB = 'policy-invalid' satisfies JobName;

export type PolicyInvalidNotice = JobPayload<typeof POLICY_INVALID_NOTICE_JOB>;

export type ReloadOutcome =
  | { outcome: 'applied' | 'unchanged'; hash: string }
  | { outcome: 'rejected'; hash: string; problems: string[] }
  | { outcome: 'no_file'; hash: string };

/** What asked for a re-read (logged; a broadcast is not re-broadcast). */
export type ReloadTrigger = 'file' | 'SIGHUP' | 'broadcast' | 'manual';

const HASH = /^[0-9a-f]{64}$/;
/** One key for every replica: recording a version is serialised across the fleet. */
const VERSIONS_LOCK = 'armalo:policy_versions';

export interface PolicyWatcherDeps {
  /** The policy file this replica is configured with. */
  file: string;
  holder: PolicyHolder;
  db: Db;
  clock: Clock;
  logger: Logger;
  /** A fail-fast connection (no offline queue) to announce a new version on. */
  publisher: Pick<Redis, 'publish'>;
  /** A connection of its own, used only to subscribe. */
  subscriber: Redis;
  /** `<queue prefix>:policy`: every replica of this deployment listens on it. */
  channel: string;
  /** Quiet time before a re-read (editors write a file in several steps). Default 200 ms. */
  debounceMs?: number;
  /** Watch the file's directory (default true; tests may rely on `reload()` alone). */
  watchFiles?: boolean;
  /**
   * Also look at the file's size, modification time and inode this often (default 5 s): a directory
   * watch can miss events (network and overlay file systems, a busy host), a look cannot.
   */
  filePollMs?: number;
}

/**
 * Keeps one replica's policy current (DESIGN §5 "live policy"). A change is noticed by a watch on the
 * file's directory (editors and Kubernetes config maps replace the file by rename, so the file itself
 * cannot be watched), by `SIGHUP`, or by another replica's broadcast of the hash it switched to. Each
 * replica then re-reads the file IT is configured with and validates it exactly as at start: a valid,
 * different policy is swapped in at once; an invalid one changes nothing and says why (log, incidents
 * channel). The first replica to record a new version audits it (`policy.changed`, once per change).
 */
export class PolicyWatcher {
  private fsWatcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private pendingTrigger: ReloadTrigger | undefined;
  /** The content last rejected here: logged once, not on every file event. */
  private lastRejected: string | undefined;
  private stopped = false;
  private poller: NodeJS.Timeout | undefined;
  /** What the last look at the file saw (size, mtime, inode), to notice a change the watch missed. */
  private lastSeen: string | undefined;

  constructor(private readonly deps: PolicyWatcherDeps) {}

  /** Records the running version (audited if it differs from the last one recorded), then listens. */
  async start(): Promise<void> {
    const { holder, subscriber, channel, logger } = this.deps;
    await this.recordVersion(holder.policy, holder.hash, 'start').catch((err: Error) =>
      logger.error({ err: err.message, hash: holder.hash }, 'could not record the running policy version (Postgres); it is recorded at the next change or start'),
    );
    subscriber.on('message', (from: string, message: string) => {
      if (from !== channel) return;
      const hash = parseAnnouncement(message);
      if (hash && hash !== holder.hash) this.schedule('broadcast');
    });
    await subscriber.subscribe(channel);
    if (this.deps.watchFiles !== false) {
      try {
        // Every event in the directory counts (a config map swaps a `..data` link, not the file,
        // and some platforms give no file name); re-reading an unchanged file costs a read and a hash.
        this.fsWatcher = watch(dirname(this.deps.file), { persistent: false }, () => this.schedule('file'));
        this.fsWatcher.on('error', (err) => logger.warn({ err: err.message, file: this.deps.file }, 'the policy file watch failed; changes are picked up by the periodic look, on SIGHUP or another replica\'s announcement'));
      } catch (err) {
        logger.warn({ err: (err as Error).message, file: this.deps.file }, 'cannot watch the policy file; changes are picked up by the periodic look, on SIGHUP or another replica\'s announcement');
      }
      this.lastSeen = await this.look();
      this.poller = setInterval(() => {
        void this.look().then((seen) => {
          if (seen !== this.lastSeen) {
            this.lastSeen = seen;
            this.schedule('file');
          }
        });
      }, this.deps.filePollMs ?? 5000);
      this.poller.unref();
    }
  }

  /** The file's size, modification time and inode ('' when it cannot be read: that is a change too). */
  private async look(): Promise<string> {
    try {
      const s = await stat(this.deps.file);
      return `${s.size}:${s.mtimeMs}:${s.ino}`;
    } catch {
      return '';
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.poller);
    this.fsWatcher?.close();
  }

  /** Re-reads after a quiet time; several triggers in a row make one re-read. */
  schedule(trigger: ReloadTrigger): void {
    if (this.stopped) return;
    // A local trigger wins over a broadcast: the new version is then announced.
    if (this.pendingTrigger === undefined || this.pendingTrigger === 'broadcast') this.pendingTrigger = trigger;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const next = this.pendingTrigger ?? trigger;
      this.pendingTrigger = undefined;
      void this.reload(next).catch((err: Error) => this.deps.logger.error({ err: err.message }, 'policy reload failed'));
    }, this.deps.debounceMs ?? 200);
    this.timer.unref();
  }

  /** Re-reads the file now (one re-read at a time) and answers what happened. */
  reload(trigger: ReloadTrigger = 'manual'): Promise<ReloadOutcome> {
    const run = this.queue.then(() => this.reloadNow(trigger));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const { file, holder, logger } = this.deps;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      // A file being replaced can be missing for a moment: look once more before calling it invalid.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      try {
        text = await readFile(file, 'utf8');
      } catch {
        const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
        return this.rejected(new PolicyError(file, [`cannot read the file: ${reason}`]), `unreadable:${reason}`);
      }
    }
    let next: Policy;
    try {
      next = parsePolicyText(text, file);
    } catch (err) {
      if (err instanceof PolicyError) return this.rejected(err, text);
      throw err;
    }
    this.lastRejected = undefined;
    const previousHash = holder.hash;
    const previous: Policy = { ...holder.policy };
    if (!holder.replace(next)) return { outcome: 'unchanged', hash: holder.hash };
    logger.info({ trigger, file, from: previousHash, to: holder.hash }, 'policy reloaded: the new policy is in force on this replica');
    const hash = holder.hash;
    // Recorded and announced at once: the other replicas must not wait for Postgres (a slow or
    // locked database would hold every replica on the old policy). This replica's transaction takes
    // the versions lock first, so it records and audits the change with its own trigger; a replica
    // re-reading after the announcement finds it recorded.
    const recorded = this.recordVersion(holder.policy, hash, trigger, previous).catch((err: Error) =>
      logger.error({ err: err.message, hash }, 'the new policy is in force but could not be recorded and audited (Postgres); it is recorded at the next change or start'),
    );
    if (trigger !== 'broadcast') await this.announce(hash);
    await recorded;
    return { outcome: 'applied', hash };
  }

  /** Tells every replica to re-read its file. Bounded: with Redis away the others catch up by their own watch. */
  private async announce(hash: string): Promise<void> {
    try {
      await this.deps.publisher.publish(this.deps.channel, JSON.stringify({ hash }));
    } catch (err) {
      this.deps.logger.warn({ err: (err as Error).message }, 'could not announce the new policy to other replicas (Redis); they pick it up from their own file watch');
    }
  }

  /** An invalid file: the running policy stays; the log and (once per content) the incidents channel say why. */
  private async rejected(err: PolicyError, content: string): Promise<ReloadOutcome> {
    const { holder, logger, db, clock, file } = this.deps;
    const contentHash = createHash('sha256').update(content).digest('hex');
    const outcome: ReloadOutcome = { outcome: 'rejected', hash: holder.hash, problems: err.problems };
    if (this.lastRejected === contentHash) return outcome;
    this.lastRejected = contentHash;
    logger.error({ file, problems: err.problems, runningHash: holder.hash }, `the policy file is invalid; nothing changed, the previous policy stays in force:\n${err.message}`);
    try {
      const now = clock.now();
      await db.transaction().execute(async (trx) => {
        const first = await trx
          .insertInto('policy_rejections')
          .values({ content_hash: contentHash, seen_at: now, problems: JSON.stringify(err.problems) })
          .onConflict((oc) => oc.column('content_hash').doNothing())
          .returning('content_hash')
          .executeTakeFirst();
        if (!first) return;
        const notice: PolicyInvalidNotice = { contentHash, file, problems: err.problems, runningHash: holder.hash, at: now.toISOString() };
        await addOutboxJob(trx, { jobName: POLICY_INVALID_NOTICE_JOB, payload: notice }, now);
      });
    } catch (dbErr) {
      logger.warn({ err: (dbErr as Error).message }, 'could not queue the invalid-policy notice (Postgres)');
    }
    return outcome;
  }

  /**
   * Records the version when it differs from the latest one recorded (serialised across replicas), and
   * audits the change against that latest version. Answers whether this replica recorded it.
   */
  private async recordVersion(policy: Policy, hash: string, trigger: ReloadTrigger | 'start', previousHere?: Policy): Promise<boolean> {
    const { db, clock, file } = this.deps;
    return db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext(${VERSIONS_LOCK}))`.execute(trx);
      const latest = await trx.selectFrom('policy_versions').select(['hash', 'policy']).orderBy('id', 'desc').limit(1).executeTakeFirst();
      if (latest?.hash === hash) return false;
      const before = (latest?.policy as Policy | undefined) ?? previousHere;
      const summary = before ? summarizePolicyChange(before, policy) : null;
      const now = clock.now();
      await trx
        .insertInto('policy_versions')
        .values({ hash, applied_at: now, summary: JSON.stringify(summary), policy: JSON.stringify(policy) })
        .execute();
      // The first version ever recorded is where the history starts, not a change.
      if (latest) {
        await appendAudit(trx, { actor: 'system:policy', action: 'policy.changed', subject: 'policy', payload: { from: latest.hash, to: hash, file, trigger, summary }, at: now });
      }
      return true;
    });
  }
}

function parseAnnouncement(message: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(message);
    const hash = parsed !== null && typeof parsed === 'object' ? (parsed as { hash?: unknown }).hash : undefined;
    return typeof hash === 'string' && HASH.test(hash) ? hash : undefined;
  } catch {
    return undefined;
  }
}
