import { z } from 'zod';

/**
 * Compact durations as people write them in policy files and chat commands: `90s`, `10m`, `2h`, `30d`,
 * `1w`, and combinations from the largest unit down (`1h30m`, `1d12h`). Pure; no imports besides zod.
 */

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

/** The longest duration accepted anywhere: a year. Longer timers are almost always a typo. */
export const MAX_DURATION_MS = 365 * DAY;

const UNITS = [
  { unit: 'w', ms: WEEK },
  { unit: 'd', ms: DAY },
  { unit: 'h', ms: HOUR },
  { unit: 'm', ms: MINUTE },
  { unit: 's', ms: SECOND },
] as const;

// Units must appear at most once and from the largest down, so `30m1h` and `1h1h` are rejected rather
// than guessed at. At most 6 digits per part keeps the arithmetic exact; the 365-day cap is checked after.
const DURATION_PATTERN = /^(?:(\d{1,6})w)?(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?$/;

/**
 * Milliseconds for a compact duration, or `undefined` when the text is not one: empty, negative, zero,
 * fractional (`1.5h`), without a unit (`90`), with an unknown unit (`5y`, `100ms`), with units out of order
 * (`30m1h`), with spaces inside (`1h 30m`) or longer than 365 days. Surrounding whitespace is ignored.
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  const match = DURATION_PATTERN.exec(trimmed);
  if (!match) return undefined;
  let total = 0;
  UNITS.forEach(({ ms }, index) => {
    const digits = match[index + 1];
    if (digits !== undefined) total += Number(digits) * ms;
  });
  if (total <= 0 || total > MAX_DURATION_MS) return undefined;
  return total;
}

/**
 * Compact text for a duration, the inverse of {@link parseDuration} for whole seconds: `2h`, `1h30m`,
 * `30d`, `1w` (weeks only when the whole duration is a number of weeks, so `30d` stays `30d`).
 * Sub-second remainders are dropped; anything under a second is `0s`.
 * @throws RangeError for a negative or non-finite number.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`formatDuration: expected a non-negative finite number, got ${ms}`);
  let rest = Math.floor(ms / SECOND) * SECOND;
  if (rest === 0) return '0s';
  if (rest % WEEK === 0) return `${rest / WEEK}w`;
  let text = '';
  for (const { unit, ms: size } of UNITS) {
    if (unit === 'w') continue;
    const count = Math.floor(rest / size);
    if (count > 0) {
      text += `${count}${unit}`;
      rest -= count * size;
    }
  }
  return text;
}

/** A parsed duration: the text as written (trimmed, for messages) and its length in milliseconds. */
export interface Duration {
  text: string;
  ms: number;
}

export const DURATION_MESSAGE = 'expected a duration such as 90s, 10m, 2h, 30d, 1w or 1h30m (more than 0, at most 365d)';

/**
 * Zod schema for a duration field. Input: a string (that is what the JSON Schema publishes); output:
 * `{ text, ms }`, so consumers schedule with `ms` and quote `text` back to people.
 */
export const durationSchema = z
  .string({ error: DURATION_MESSAGE })
  .refine((text) => parseDuration(text) !== undefined, { error: DURATION_MESSAGE })
  // Published in the JSON Schema so editors flag a bad duration while typing; the 365-day cap is ours.
  .meta({
    description: 'Duration: whole numbers with units w, d, h, m, s, largest first (90s, 10m, 2h, 30d, 1w, 1h30m); more than 0, at most 365d.',
    pattern: '^\\s*(?=\\d)(\\d{1,6}w)?(\\d{1,6}d)?(\\d{1,6}h)?(\\d{1,6}m)?(\\d{1,6}s)?\\s*$',
    examples: ['10m', '4h', '30d', '1h30m'],
  })
  .transform((text): Duration => ({ text: text.trim(), ms: parseDuration(text) ?? 0 }));
