import { Queue, type DefaultJobOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUES, type QueueName } from '../outbox/outbox.repository.js';
import { tracing } from '../observability/tracing.js';

/** Retry and retention per queue. Retries are bounded; completed job ids are kept long enough to dedupe. */
export const JOB_OPTIONS: Record<QueueName, DefaultJobOptions> = {
  // Outbound webhooks: 10 attempts, waits of 1, 2, 4 … 256 s between them (about 8.5 minutes in all).
  events: {
    attempts: 10,
    backoff: { type: 'exponential', delay: 1000 },
    removeOnComplete: { age: 7 * 24 * 3600, count: 50_000 },
    removeOnFail: { age: 30 * 24 * 3600 },
  },
  // Chat notices: 8 attempts, waits of 2, 4 … 128 s; a 429 is a delay, not an attempt.
  notify: {
    attempts: 8,
    backoff: { type: 'exponential', delay: 2000 },
    removeOnComplete: { age: 7 * 24 * 3600, count: 50_000 },
    removeOnFail: { age: 30 * 24 * 3600 },
  },
  timers: {
    attempts: 20,
    backoff: { type: 'fixed', delay: 5000 },
    removeOnComplete: { age: 7 * 24 * 3600, count: 50_000 },
    removeOnFail: { age: 30 * 24 * 3600 },
  },
};

export type Queues = Record<QueueName, Queue>;

export function createQueues(connection: Redis, prefix: string, onError: (queue: string, err: Error) => void = () => {}): Queues {
  const make = (name: QueueName) => {
    // With tracing on, BullMQ's own telemetry: adding a job is a span, and the job's span its child.
    const queue = new Queue(name, { connection, prefix, defaultJobOptions: JOB_OPTIONS[name], ...(tracing ? { telemetry: tracing.bullmq } : {}) });
    // Connection errors surface here; without a listener BullMQ prints them to stderr.
    queue.on('error', (err) => onError(name, err));
    return queue;
  };
  return { events: make(QUEUES.events), timers: make(QUEUES.timers), notify: make(QUEUES.notify) };
}

export async function closeQueues(queues: Queues): Promise<void> {
  await Promise.all(Object.values(queues).map((q) => q.close()));
}
