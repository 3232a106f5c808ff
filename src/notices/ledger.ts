import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { Clock } from '../core/clock.js';
import { RetryLater, type MessageRef, type PlatformName } from './platform.js';

/** How long a lease lasts unless renewed: a worker killed mid-delivery blocks its key at most this long. */
export const LEASE_MS = 60_000;
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
   * Runs `work` while holding the lease on `key`. When another live worker keeps it longer than a
   * short wait, throws RetryLater (a short delay): the job comes back after it, without spending an
   * attempt.
   */
  async exclusive<T>(key: string, work: () => Promise<T>): Promise<T> {
    const holder = `${this.holderPrefix}:${randomUUID()}`;
    // Most turns are short (one card update): wait a little for the lease before giving the job back
    // to the queue. Waiting holds a worker slot, never a database connection.
    const waitUntil = Date.now() + (this.deps.busyWaitMs ?? BUSY_WAIT_MS);
    while (!(await this.acquire(key, holder))) {
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

  private async extend(key: string, holder: string): Promise<void> {
    await sql`update chat_leases set expires_at = now() + ${this.leaseMs} * interval '1 millisecond' where key = ${key} and holder = ${holder}`.execute(this.deps.db);
  }

  private async release(key: string, holder: string): Promise<void> {
    await this.deps.db.deleteFrom('chat_leases').where('key', '=', key).where('holder', '=', holder).execute();
  }
}
