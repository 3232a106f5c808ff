import { invalidInput } from './errors.js';

/** How far ahead of our clock a reported time may be (clock skew between honest systems). */
export const MAX_FUTURE_SKEW_MS = 5 * 60_000;

/**
 * Refuses a reported time more than five minutes ahead of `now`. Evidence dated in the future would
 * stay "fresh" forever and defeat every freshness rule (evidenceOlderThan, freshEvaluation, stale
 * evidence consequences), so it is bad input, named by its field.
 */
export function assertNotInFuture(field: string, at: Date, now: Date): void {
  if (at.getTime() - now.getTime() <= MAX_FUTURE_SKEW_MS) return;
  const message = `${at.toISOString()} is in the future (more than 5 minutes ahead of the server clock, ${now.toISOString()}); nothing was recorded`;
  throw invalidInput(`invalid ${field}: ${message}`, [{ path: field, message }]);
}
