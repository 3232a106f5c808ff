import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Calls `fire(i)` for i = 0 … count-1 at `start + i × interval` (ms, performance.now()), whether
 * or not earlier calls have finished (open loop: a slow answer does not slow the arrivals).
 */
export async function steady(count: number, intervalMs: number, start: number, fire: (i: number) => Promise<void>): Promise<void> {
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const wait = start + i * intervalMs - performance.now();
    if (wait > 0.5) await sleep(wait);
    inflight.push(fire(i));
  }
  await Promise.all(inflight);
}
