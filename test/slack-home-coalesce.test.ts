import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUES, type QueueName } from '../src/queue/job-contracts.js';
import { HOME_REFRESH_DELAY_MS, requestSlackHome } from '../src/slack/slack-home.js';
import { SLACK_HOME_JOB } from '../src/slack/slack-directory.js';
import { cleanRedisPrefix, waitFor } from './support/app.js';
import { REDIS_URL } from './support/database.js';

/**
 * App Home publishes are coalesced per person on the real queue: a burst of changes is one publish,
 * a change while a publish runs is one more after it (never lost), and opening the tab moves a
 * waiting publish up to now.
 */
const prefix = `armalo-test-home-${randomUUID().slice(0, 8)}`;
let connection: Redis;
let notify: Queue;
let queues: Record<QueueName, Queue>;

beforeAll(() => {
  connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  notify = new Queue(QUEUES.notify, { connection, prefix });
  // Only the notify queue is used by these jobs.
  queues = { [QUEUES.notify]: notify } as Record<QueueName, Queue>;
});

afterAll(async () => {
  await notify.close();
  await connection.quit();
  await cleanRedisPrefix(prefix);
});

/** A worker on the notify queue whose publishes of `userId` wait for `release` (when given). */
function homeWorker(userId: string, gate?: Promise<void>) {
  const ran: { at: number; job: Job }[] = [];
  const own = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const worker = new Worker(
    QUEUES.notify,
    async (job) => {
      if (job.name !== SLACK_HOME_JOB || job.data.userId !== userId) return 'other';
      ran.push({ at: Date.now(), job });
      if (ran.length === 1 && gate) await gate;
      return 'published';
    },
    { connection: own, prefix, concurrency: 4 },
  );
  const close = async () => {
    await worker.close();
    await own.quit();
  };
  return { ran, close };
}

/** Jobs not finished yet, by state (every state named, 0 when empty). */
async function pending(): Promise<{ waiting: number; delayed: number; active: number; prioritized: number }> {
  const c = await notify.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
  return { waiting: c.waiting ?? 0, delayed: c.delayed ?? 0, active: c.active ?? 0, prioritized: c.prioritized ?? 0 };
}

describe('App Home publishes coalesce per person', () => {
  it('fifty changes in a row are one delayed publish; another person gets their own', async () => {
    for (let i = 0; i < 50; i++) await requestSlackHome(queues, 'U0BURST', 'changed');
    await requestSlackHome(queues, 'U0OTHER', 'changed');
    const counts = await pending();
    expect(counts.delayed).toBe(2);
    expect(counts.waiting + counts.active + counts.prioritized).toBe(0);
    const delayed = await notify.getDelayed();
    expect(delayed.map((j) => j.data.userId).sort()).toEqual(['U0BURST', 'U0OTHER']);
    expect(delayed.every((j) => j.opts.delay === HOME_REFRESH_DELAY_MS)).toBe(true);
    await notify.drain(true);
  });

  it('opening the tab moves a waiting publish up to now, and adds no second one', async () => {
    const { ran, close } = homeWorker('U0OPEN');
    try {
      await requestSlackHome(queues, 'U0OPEN', 'changed');
      const requestedAt = Date.now();
      await requestSlackHome(queues, 'U0OPEN', 'opened');
      await waitFor(() => ran.length === 1, 5000, 'the publish');
      // Run before the change's delay would have let it (the reschedule), not after.
      expect(ran[0]!.at - requestedAt).toBeLessThan(HOME_REFRESH_DELAY_MS);
      await waitFor(async () => (await pending()).delayed === 0, 5000, 'nothing left waiting');
      expect(ran).toHaveLength(1);
    } finally {
      await close();
    }
  });

  it('changes while a publish runs are one more publish after it, so the last change is not lost', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { ran, close } = homeWorker('U0BUSY', gate);
    try {
      await requestSlackHome(queues, 'U0BUSY', 'opened');
      await waitFor(() => ran.length === 1, 5000, 'the first publish to start');
      // The first publish has read its state; these changes come after it.
      for (let i = 0; i < 10; i++) await requestSlackHome(queues, 'U0BUSY', 'changed');
      expect((await pending()).delayed).toBe(0);
      release();
      await waitFor(() => ran.length === 2, 5000, 'one more publish after the running one');
      // Kept with its delay: it ran at least the coalescing window after it was queued.
      expect(ran[1]!.job.opts.delay).toBe(HOME_REFRESH_DELAY_MS);
      await waitFor(async () => {
        const c = await pending();
        return c.delayed + c.waiting + c.active === 0;
      }, 5000, 'the queue to settle');
      expect(ran).toHaveLength(2);
    } finally {
      release();
      await close();
    }
  });
});
