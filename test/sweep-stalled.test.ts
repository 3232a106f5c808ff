import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from './support/app.js';
import { REDIS_URL, testPrefix } from './support/database.js';
import { MAX_REVIVALS, reviveStalled, STALL_FAILURE } from '../jobs/sweep.job.js';
import { systemClock } from '../src/core/clock.js';

// A job whose workers keep dying while they run it is failed by BullMQ ("stalled more than allowable
// limit"). For a notice, an event or a callback that would lose it: the sweep puts it back.
const prefix = testPrefix();
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
const queue = new Queue('notify', { connection: redis, prefix });
const workers: Worker[] = [];
const connections: Redis[] = [];
const connect = () => {
  const c = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  connections.push(c);
  return c;
};

afterAll(async () => {
  await Promise.all(workers.map((w) => w.close(true).catch(() => undefined)));
  await queue.obliterate({ force: true }).catch(() => undefined);
  await queue.close();
  for (const c of [...connections, redis]) c.disconnect();
});

/** A worker that takes a job and dies with it (closed by force: its lock is no longer renewed). */
async function dieRunning(jobId: string): Promise<void> {
  const started = new Promise<void>((resolve) => {
    const w = new Worker('notify', () => (resolve(), new Promise(() => undefined)), { connection: connect(), prefix, lockDuration: 400, stalledInterval: 300 });
    workers.push(w);
  });
  await queue.add('incident-update', { n: jobId }, { jobId });
  await started;
  await workers.at(-1)!.close(true);
}

describe('jobs failed by stalling', () => {
  it('are put back by the sweep with the same id and payload, and run to the end; at most MAX_REVIVALS times each', { timeout: 60_000 }, async () => {
    await dieRunning('stalled-1');
    await dieRunning('stalled-2');
    // The survivor's stall check fails them at their first stall (a limit of 0 here, 10 in production).
    const done: string[] = [];
    const survivor = new Worker('notify', async (job) => (done.push(String(job.id)), 'delivered'), {
      connection: connect(),
      prefix,
      maxStalledCount: 0,
      stalledInterval: 300,
      autorun: false,
    });
    workers.push(survivor);
    void survivor.run();
    await waitFor(async () => (await queue.getFailed()).length === 2, 20_000, 'both jobs failed by stalling');
    expect((await queue.getFailed()).map((j) => j.failedReason)).toEqual([STALL_FAILURE, STALL_FAILURE]);

    // One of them already came back as often as it may.
    await redis.hset(queue.toKey('stalled-2'), 'armaloRevived', MAX_REVIVALS);
    expect(await reviveStalled(queue, redis, systemClock)).toBe(1);
    await waitFor(() => done.includes('stalled-1'), 10_000, 'the revived job to run');
    const revived = await queue.getJob('stalled-1');
    expect(revived?.data).toEqual({ n: 'stalled-1' });
    expect(await revived?.getState()).toBe('completed');
    expect(await redis.hget(queue.toKey('stalled-1'), 'armaloRevived')).toBe('1');
    // The other stays failed, and a second sweep finds nothing more to do.
    expect(await queue.getJobState('stalled-2')).toBe('failed');
    expect(await reviveStalled(queue, redis, systemClock)).toBe(0);
  });
});
