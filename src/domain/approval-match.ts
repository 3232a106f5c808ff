/**
 * Does an approval cover the action an agent now asks about? An approval is bound to the whole
 * context the approvers saw, not only to its action: an approval for 500 USD to partner.example must
 * not allow 500 EUR to attacker.example.
 *
 * - `amount` is a ceiling: a number asked at most the approved number matches. An approval without an
 *   amount matches only a request without one (approvers who saw no amount approved no amount).
 * - Every other key must be present on both sides and deeply equal (JSON values: objects compare
 *   key by key whatever the order, arrays element by element). A key on one side only is a mismatch.
 *
 * Fails closed: anything that is not positively covered is a mismatch, with the first reason found.
 */
export type ApprovalMatch = { covers: true } | { covers: false; reason: string };

const AMOUNT = 'amount';

export function approvalCovers(approved: Readonly<Record<string, unknown>>, asked: Readonly<Record<string, unknown>>): ApprovalMatch {
  const amountProblem = amountMismatch(approved, asked);
  if (amountProblem) return { covers: false, reason: amountProblem };
  const keys = new Set([...Object.keys(approved), ...Object.keys(asked)]);
  keys.delete(AMOUNT);
  for (const key of [...keys].sort()) {
    const inApproved = Object.hasOwn(approved, key);
    const inAsked = Object.hasOwn(asked, key);
    if (!inApproved) return { covers: false, reason: `context.${key} was not part of the approved request` };
    if (!inAsked) return { covers: false, reason: `context.${key} was approved as ${show(approved[key])} but is missing now` };
    if (!jsonEqual(approved[key], asked[key])) {
      return { covers: false, reason: `context.${key} is ${show(asked[key])}; the approval was for ${show(approved[key])}` };
    }
  }
  return { covers: true };
}

function amountMismatch(approved: Readonly<Record<string, unknown>>, asked: Readonly<Record<string, unknown>>): string | null {
  const inApproved = Object.hasOwn(approved, AMOUNT);
  const inAsked = Object.hasOwn(asked, AMOUNT);
  if (!inApproved && !inAsked) return null;
  if (!inApproved) return 'the approval was for no amount; context.amount must be absent';
  if (!inAsked) return `context.amount is missing; the approval was for at most ${show(approved[AMOUNT])}`;
  const ceiling = approved[AMOUNT];
  const amount = asked[AMOUNT];
  // A non-numeric approved amount has no order: only the same value matches.
  if (typeof ceiling !== 'number' || !Number.isFinite(ceiling)) {
    return jsonEqual(ceiling, amount) ? null : `context.amount is ${show(amount)}; the approval was for ${show(ceiling)}`;
  }
  if (typeof amount !== 'number' || !Number.isFinite(amount)) return `context.amount ${show(amount)} is not a number`;
  if (amount > ceiling) return `amount ${amount} is more than the approved ${ceiling}`;
  return null;
}

/** Deep equality of JSON values. Objects compare by their own keys, in any order; arrays in order. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as unknown[];
    return a.length === other.length && a.every((item, index) => jsonEqual(item, other[index]));
  }
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const leftKeys = Object.keys(left);
  if (leftKeys.length !== Object.keys(right).length) return false;
  return leftKeys.every((key) => Object.hasOwn(right, key) && jsonEqual(left[key], right[key]));
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
