import { describe, expect, it } from 'vitest';
import { assertNotInFuture, MAX_FUTURE_SKEW_MS } from '../../src/domain/clock-skew.js';
import { ErrorCode, isCodedError } from '../../src/domain/errors.js';

/** Evidence dated in the future is refused, with five minutes of clock skew allowed and not a millisecond more. */

const now = new Date('2026-11-27T12:00:00.000Z');
const ahead = (ms: number) => new Date(now.getTime() + ms);

describe('assertNotInFuture', () => {
  it('accepts the past, now, and up to exactly five minutes ahead', () => {
    expect(MAX_FUTURE_SKEW_MS).toBe(300_000);
    for (const at of [ahead(-86_400_000), now, ahead(299_999), ahead(300_000)]) expect(() => assertNotInFuture('observedAt', at, now)).not.toThrow();
  });

  it('refuses a millisecond more, as bad input naming the field and both times', () => {
    let caught: unknown;
    try {
      assertNotInFuture('observedAt', ahead(300_001), now);
    } catch (err) {
      caught = err;
    }
    expect(isCodedError(caught)).toBe(true);
    const message = '2026-11-27T12:05:00.001Z is in the future (more than 5 minutes ahead of the server clock, 2026-11-27T12:00:00.000Z); nothing was recorded';
    expect(caught).toMatchObject({ code: ErrorCode.InvalidInput, message: `invalid observedAt: ${message}`, details: [{ path: 'observedAt', message }] });
    expect(() => assertNotInFuture('createdAt', new Date('2099-01-01T00:00:00Z'), now)).toThrow(/^invalid createdAt: 2099-01-01T00:00:00.000Z is in the future/);
  });
});
