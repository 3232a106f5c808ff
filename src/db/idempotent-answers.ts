import type { DbOrTrx } from './database.js';

/** An answer given once, to be given again to a retry with the same idempotency key. */
export interface StoredAnswer<T = unknown> {
  status: number;
  body: T;
}

/** Stores the answer in the caller's transaction: committed with the effect it reports, or not at all. */
export async function storeAnswer(trx: DbOrTrx, key: string, answer: StoredAnswer): Promise<void> {
  await trx.insertInto('idempotent_answers').values({ key, status: answer.status, body: JSON.stringify(answer.body) }).execute();
}

export async function findAnswer<T>(db: DbOrTrx, key: string): Promise<StoredAnswer<T> | undefined> {
  const row = await db.selectFrom('idempotent_answers').select(['status', 'body']).where('key', '=', key).executeTakeFirst();
  return row ? { status: row.status, body: row.body as T } : undefined;
}

/**
 * Runs `act` unless an answer is stored under `key`. When `act` fails and a concurrent request with
 * the same key has committed an answer meanwhile (`act` failed on the key, or on what that request
 * changed: nothing left to restore), answers what that one stored. A stored body comes back with
 * `replayed: true`.
 */
export async function answerOnce<T extends object>(db: DbOrTrx, key: string | undefined, act: () => Promise<StoredAnswer<T>>): Promise<StoredAnswer<T>> {
  const replay = async () => {
    const before = key === undefined ? undefined : await findAnswer<T>(db, key);
    return before && { status: before.status, body: { ...before.body, replayed: true } };
  };
  const before = await replay();
  if (before) return before;
  try {
    return await act();
  } catch (err) {
    const taken = await replay().catch(() => undefined);
    if (taken) return taken;
    throw err;
  }
}
