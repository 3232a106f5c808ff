import { describe, it, expect } from 'vitest';
import { durationSchema, formatDuration, MAX_DURATION_MS, parseDuration } from '../src/domain/duration.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe('parseDuration', () => {
  it.each([
    ['90s', 90 * SECOND],
    ['10m', 10 * MINUTE],
    ['2h', 2 * HOUR],
    ['30d', 30 * DAY],
    ['1w', 7 * DAY],
    ['1h30m', HOUR + 30 * MINUTE],
    ['1d12h', DAY + 12 * HOUR],
    ['1w2d3h4m5s', 9 * DAY + 3 * HOUR + 4 * MINUTE + 5 * SECOND],
    ['0h30m', 30 * MINUTE],
    ['365d', 365 * DAY],
    ['52w', 364 * DAY],
    [' 2h ', 2 * HOUR],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    [''],
    ['   '],
    ['0s'],
    ['0h0m'],
    ['-5m'],
    ['+5m'],
    ['90'],
    ['h'],
    ['5y'],
    ['100ms'],
    ['1.5h'],
    ['1H'],
    ['30m1h'],
    ['1h1h'],
    ['1h 30m'],
    ['366d'],
    ['53w'],
    ['1234567d'],
    ['2 hours'],
  ])('%j is not a duration', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it('caps durations at 365 days', () => {
    expect(MAX_DURATION_MS).toBe(365 * DAY);
    expect(parseDuration('365d1s')).toBeUndefined();
  });
});

describe('formatDuration', () => {
  it.each([
    [2 * HOUR, '2h'],
    [HOUR + 30 * MINUTE, '1h30m'],
    [90 * SECOND, '1m30s'],
    [30 * DAY, '30d'],
    [7 * DAY, '1w'],
    [14 * DAY, '2w'],
    [8 * DAY + 12 * HOUR, '8d12h'],
    [0, '0s'],
    [999, '0s'],
    [61_500, '1m1s'],
  ])('%d ms is %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips with parseDuration', () => {
    for (const text of ['90s', '10m', '2h', '30d', '1w', '1h30m', '1d12h', '365d']) {
      const ms = parseDuration(text);
      expect(ms).toBeDefined();
      expect(parseDuration(formatDuration(ms ?? 0))).toBe(ms);
    }
  });

  it('rejects negative and non-finite numbers', () => {
    expect(() => formatDuration(-1)).toThrow(RangeError);
    expect(() => formatDuration(Number.NaN)).toThrow(RangeError);
    expect(() => formatDuration(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});

describe('durationSchema', () => {
  it('turns the text into { text, ms }', () => {
    expect(durationSchema.parse('1h30m')).toEqual({ text: '1h30m', ms: HOUR + 30 * MINUTE });
  });

  it('rejects invalid durations and non-strings with one clear message', () => {
    for (const input of ['soon', '0m', 15, null]) {
      const result = durationSchema.safeParse(input);
      expect(result.success).toBe(false);
      expect(result.error?.issues).toHaveLength(1);
      expect(result.error?.issues[0]?.message).toMatch(/^expected a duration such as 90s, 10m/);
    }
  });
});
