import { describe, expect, it } from 'vitest';
import { createLimitedLog, createLogger } from '../src/observability/logger.js';
import { LogCapture } from './support/app.js';

describe('the keyed log limiter', () => {
  it('logs a key once per window, then says how many lines it held back', () => {
    const logs = new LogCapture();
    let now = 0;
    const log = createLimitedLog(createLogger({ destination: logs }), { everyMs: 60_000, now: () => now });
    for (let i = 0; i < 100; i++) log('warn', 'redis', { err: 'ECONNREFUSED' }, 'worker error');
    log('warn', 'postgres', { err: 'terminated' }, 'connection lost');
    expect(logs.lines.map((l) => l.msg)).toEqual(['worker error', 'connection lost']);

    now = 60_000;
    log('warn', 'redis', { err: 'ECONNREFUSED' }, 'worker error');
    expect(logs.lines).toHaveLength(3);
    expect(logs.lines[2]).toMatchObject({ level: 'warn', err: 'ECONNREFUSED', suppressed: 99, msg: 'worker error (99 more like this since the last line)' });

    // After a reset (the condition ended) the next occurrence is logged at once.
    log.reset('postgres');
    log('error', 'postgres', {}, 'connection lost again');
    expect(logs.lines.at(-1)).toMatchObject({ level: 'error', msg: 'connection lost again' });
  });
});
