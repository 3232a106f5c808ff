import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import { RetryLater, type ChatPlatform, type MessageRef, type PlatformName, type PostTarget } from './platform.js';

/**
 * How long a lease lasts unless renewed: a worker killed mid-delivery blocks its key at most this
 * long. The holder renews it every third of that (a heartbeat), so a live holder keeps it through an
 * event-loop stall of up to two thirds of it; a dead one frees it within this. It was a minute: jobs
 * waiting on a dead holder's key bounced in and out of the queue for that minute, and with workers
 * dying again meanwhile they were taken over more than BullMQ's stall limit allows (issue 15).
 */
export const LEASE_MS = 10_000;
/**
 * A "sending" marker left behind (a post that may or may not have reached the platform) is looked up
 * on the platform before the key is posted again. When the lookup keeps failing for this long after
 * the marker was written, the notice is posted without it (a possible duplicate, never a lost notice).
 */
export const LOOKUP_GIVE_UP_MS = 10 * 60_000;
/** How long a job waits before trying a lookup again after one failed without a Retry-After. */
export const LOOKUP_RETRY_MS = 2_000;
/** How long an unresolved "sending" marker is kept (the sweep trims older ones). */
export const SENDING_MARKER_MS = 7 * 24 * 3600_000;
const SENDING = 'sending:';

/**
 * The job a delivery runs in, when it runs in one: its BullMQ lock (key and token) and a way to
 * tell whether another job's lock is still held. A lease taken inside a job names that lock, so a
 * worker waiting for the key takes it over as soon as the holder's job lock is gone (the holder
 * died: BullMQ hands its job to another worker after the same lock ran out) instead of waiting out
 * the lease. Outside a job, leases only expire.
 *
 * The job passes it down explicitly (`notify` to the NoticeService use case to `exclusive`). It was
 * an AsyncLocalStorage once: the first `run` of one turns Node's async hooks on for the whole
 * process for good, and every promise and socket of every request then paid for them.
 */
export interface LeaseOwner {
  lockKey: string;
  token: string;
  /** Whether the lock `lockKey` is still held with `token` (a Redis GET). */
  holds(lockKey: string, token: string): Promise<boolean>;
}

/** `<host>:<pid>:<uuid>`, then ` <lock key> <token>` when taken inside a job. */
function holderLock(holder: string): { lockKey: string; token: string } | undefined {
  const [, lockKey, token] = holder.split(' ');
  return lockKey && token ? { lockKey, token } : undefined;
}
/** How long a job waits for a key another worker holds before it goes back to the queue. */
export const BUSY_WAIT_MS = 1_500;
/** How long a job that gave up waiting stays in the queue before it tries again. */
export const BUSY_RETRY_MS = 500;

/**
 * The message ledger: what we posted where (`chat_messages`, one row per key), and who is delivering
 * one key right now (`chat_leases`).
 *
 * Keys keep the formats the notifiers always wrote (`slack:incident:<id>`, `teams:incident:<id>`,
 * `slack:approval:<request>:<user>`, `slack:trust:<key>:<channel>`, …), so messages posted before an
 * upgrade are still found and updated, never posted again.
 *
 * Exclusivity is a lease row taken and released by single statements: no transaction (and so no
 * database connection) is held while Slack or Teams is being called, however slow they are. A lease
 * is renewed while its work runs and expires when its holder dies, after which another worker takes
 * it over.
 */
export class MessageLedger {
  private readonly leaseMs: number;
  private readonly holderPrefix = `${hostname()}:${process.pid}`;

  constructor(private readonly deps: { db: Db; clock: Clock; leaseMs?: number; busyWaitMs?: number; busyRetryMs?: number }) {
    this.leaseMs = deps.leaseMs ?? LEASE_MS;
  }

  /** The message posted under a key, if any. */
  async find(key: string): Promise<MessageRef | undefined> {
    const row = await this.deps.db.selectFrom('chat_messages').select(['channel', 'ts']).where('key', '=', key).executeTakeFirst();
    return row ? { channel: row.channel, id: row.ts } : undefined;
  }

  /** Every message whose key starts with `prefix` (all copies of one approval card, on one platform). */
  async findByPrefix(prefix: string): Promise<{ key: string; ref: MessageRef }[]> {
    const pattern = `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    const rows = await this.deps.db.selectFrom('chat_messages').select(['key', 'channel', 'ts']).where('key', 'like', pattern).orderBy('created_at').execute();
    return rows.map((r) => ({ key: r.key, ref: { channel: r.channel, id: r.ts } }));
  }

  /** Records a posted message (right after the platform accepted it). The first record of a key wins. */
  async remember(key: string, platform: PlatformName, ref: MessageRef): Promise<void> {
    await this.deps.db
      .insertInto('chat_messages')
      .values({ key, platform, channel: ref.channel, ts: ref.id, created_at: this.deps.clock.now() })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
  }

  /**
   * Posts once per key: answers the recorded message when there is one, otherwise runs `post` and
   * records what it answered.
   */
  async once(key: string, platform: PlatformName, post: () => Promise<MessageRef>): Promise<{ ref: MessageRef; posted: boolean }> {
    const existing = await this.find(key);
    if (existing) return { ref: existing, posted: false };
    const ref = await post();
    await this.remember(key, platform, ref);
    return { ref, posted: true };
  }

  /**
   * Posts a notice once per key on a platform that can find its own messages again (`findPosted`:
   * Slack, by the message metadata carrying the key). Slack takes no idempotency key, so a worker
   * that dies between Slack's answer and our record would post the notice again on the retry. Here a
   * "sending" marker is written before the call and cleared with the record; a retry that finds the
   * marker (the earlier post may have happened) looks the key up on the platform first and records
   * the message it finds instead of posting again. Found that way, it answers `posted: false` (the
   * message is older than this run: callers update it to the current state).
   *
   * When the lookup fails, the rule is: a 429, a 5xx or no answer retries the job later
   * (RetryLater: after Retry-After, or LOOKUP_RETRY_MS; no attempt spent); a refusal (a missing
   * history scope, a channel it cannot read), or lookups still failing LOOKUP_GIVE_UP_MS after the
   * marker was written, post without the lookup: at worst a duplicate, never a lost notice.
   * On a platform without a lookup (Teams) this is `once`: the window between the platform's
   * answer and our record remains there.
   */
  async postOnce(key: string, platform: ChatPlatform, to: PostTarget, post: () => Promise<MessageRef>): Promise<{ ref: MessageRef; posted: boolean }> {
    // Waiting for its turn in a rate-limited channel: back then, before any read or write here.
    const turn = platform.turnWait ? await platform.turnWait(to, key) : 0;
    if (turn > 0) throw new RetryLater(turn, `${platform.name} is pacing posts there: the turn of ${key} is in ${Math.ceil(turn / 1000)} s`, true);
    if (!platform.findPosted) return this.once(key, platform.name, post);
    const existing = await this.find(key);
    if (existing) return { ref: existing, posted: false };
    const marked = await this.marker(key);
    if (marked) {
      let found: MessageRef | undefined;
      try {
        found = await platform.findPosted(to, key, marked);
      } catch (err) {
        // A refusal (a scope the app lacks, a channel it cannot read) will not change: post now.
        const refused = err instanceof Error && err.name === 'UnrecoverableError';
        if (!refused && Date.now() - marked.getTime() <= LOOKUP_GIVE_UP_MS) {
          // 429, 5xx or no answer: the job tries again later, without spending an attempt.
          throw err instanceof RetryLater ? err : new RetryLater(LOOKUP_RETRY_MS + Math.floor(Math.random() * LOOKUP_RETRY_MS), `looking up ${key} failed: ${String((err as Error).message ?? err)}`);
        }
        found = undefined;
      }
      if (found) {
        await this.remember(key, platform.name, found);
        await this.clearMarker(key);
        const recorded = (await this.find(key)) ?? found;
        return { ref: recorded, posted: false };
      }
    } else {
      await this.mark(key);
    }
    let ref: MessageRef;
    try {
      ref = await post();
    } catch (err) {
      // Refused before anything was posted (a 429): the retry posts without looking first. Under a
      // posting limit a burst of cards is mostly 429s, and each lookup would cost two more calls.
      if (err instanceof RetryLater && err.notDone) await this.clearMarker(key);
      throw err;
    }
    await this.remember(key, platform.name, ref);
    await this.clearMarker(key);
    return { ref, posted: true };
  }

  /** When the "sending" marker of a key was written, if there is one. */
  private async marker(key: string): Promise<Date | undefined> {
    const row = await this.deps.db.selectFrom('chat_leases').select('expires_at').where('key', '=', SENDING + key).executeTakeFirst();
    return row ? new Date(new Date(row.expires_at).getTime() - SENDING_MARKER_MS) : undefined;
  }

  /** Writes the marker (in the lease table, under `sending:<key>`, expiring after SENDING_MARKER_MS); an existing one keeps its time. */
  private async mark(key: string): Promise<void> {
    await sql`
      insert into chat_leases (key, holder, expires_at)
      values (${SENDING + key}, 'sending', now() + ${SENDING_MARKER_MS} * interval '1 millisecond')
      on conflict (key) do nothing`.execute(this.deps.db);
  }

  private async clearMarker(key: string): Promise<void> {
    await this.deps.db.deleteFrom('chat_leases').where('key', '=', SENDING + key).execute();
  }

  /**
   * Runs `work` while holding the lease on `key`. When another live worker keeps it longer than a
   * short wait, throws RetryLater (a short delay): the job comes back after it, without spending an
   * attempt. With `owner` (the job it runs in), the lease names that job's lock, and a holder whose
   * job lock is gone is taken over at once; without one, a held lease is waited out until it expires.
   */
  async exclusive<T>(key: string, work: () => Promise<T>, owner?: LeaseOwner): Promise<T> {
    const holder = `${this.holderPrefix}:${randomUUID()}${owner ? ` ${owner.lockKey} ${owner.token}` : ''}`;
    // Most turns are short (one card update): wait a little for the lease before giving the job back
    // to the queue. Waiting holds a worker slot, never a database connection.
    const waitUntil = Date.now() + (this.deps.busyWaitMs ?? BUSY_WAIT_MS);
    while (!(await this.acquire(key, holder)) && !(owner && (await this.takeOverDead(key, holder, owner)))) {
      if (Date.now() >= waitUntil) {
        const wait = this.deps.busyRetryMs ?? BUSY_RETRY_MS;
        throw new RetryLater(wait + Math.floor(Math.random() * wait), `another worker is delivering ${key}`);
      }
      await new Promise((r) => setTimeout(r, 50 + Math.floor(Math.random() * 50)));
    }
    // Long deliveries (many approvers, a slow platform) keep their lease.
    const renew = setInterval(() => {
      void this.extend(key, holder).catch(() => undefined);
    }, Math.max(100, Math.floor(this.leaseMs / 3)));
    renew.unref();
    try {
      return await work();
    } finally {
      clearInterval(renew);
      await this.release(key, holder).catch(() => undefined);
    }
  }

  /** Takes the lease if it is free or expired (one statement). */
  private async acquire(key: string, holder: string): Promise<boolean> {
    const row = await sql<{ holder: string }>`
      insert into chat_leases (key, holder, expires_at)
      values (${key}, ${holder}, now() + ${this.leaseMs} * interval '1 millisecond')
      on conflict (key) do update set holder = excluded.holder, expires_at = excluded.expires_at
        where chat_leases.expires_at < now()
      returning holder`.execute(this.deps.db);
    return row.rows[0]?.holder === holder;
  }

  /**
   * Takes the lease over from a holder whose job lock is gone (its worker died), in one statement
   * that only succeeds while that holder still has it. A holder outside a job (no lock named) is
   * waited out.
   */
  private async takeOverDead(key: string, holder: string, owner: LeaseOwner): Promise<boolean> {
    const row = await this.deps.db.selectFrom('chat_leases').select('holder').where('key', '=', key).executeTakeFirst();
    const lock = row ? holderLock(row.holder) : undefined;
    if (!row || !lock || (await owner.holds(lock.lockKey, lock.token))) return false;
    const taken = await sql<{ holder: string }>`
      update chat_leases set holder = ${holder}, expires_at = now() + ${this.leaseMs} * interval '1 millisecond'
      where key = ${key} and holder = ${row.holder}
      returning holder`.execute(this.deps.db);
    return taken.rows[0]?.holder === holder;
  }

  private async extend(key: string, holder: string): Promise<void> {
    await sql`update chat_leases set expires_at = now() + ${this.leaseMs} * interval '1 millisecond' where key = ${key} and holder = ${holder}`.execute(this.deps.db);
  }

  private async release(key: string, holder: string): Promise<void> {
    await this.deps.db.deleteFrom('chat_leases').where('key', '=', key).where('holder', '=', holder).execute();
  }
}
