import { describe, expect, it } from 'vitest';
import { approvalCovers, jsonEqual } from '../../src/domain/approval-match.js';

const usd500 = { amount: 500, currency: 'USD', recipientDomain: 'partner.example' };

describe('approvalCovers: an approval is bound to its whole context', () => {
  const cases: [string, Record<string, unknown>, Record<string, unknown>, boolean][] = [
    ['the same context', usd500, { ...usd500 }, true],
    ['keys in another order', usd500, { recipientDomain: 'partner.example', currency: 'USD', amount: 500 }, true],
    ['a smaller amount (amount is a ceiling)', usd500, { ...usd500, amount: 499.99 }, true],
    ['amount 0', usd500, { ...usd500, amount: 0 }, true],
    ['amount exactly the approved amount (boundary)', usd500, { ...usd500, amount: 500 }, true],
    ['amount just above the approved amount (boundary)', usd500, { ...usd500, amount: 500.01 }, false],
    ['amount one above the approved amount', usd500, { ...usd500, amount: 501 }, false],
    ['another currency', usd500, { ...usd500, currency: 'EUR' }, false],
    ['another currency and recipient (the demonstrated attack)', usd500, { amount: 500, currency: 'EUR', recipientDomain: 'attacker.example' }, false],
    ['the currency in another case', usd500, { ...usd500, currency: 'usd' }, false],
    ['a key missing on the asking side', usd500, { amount: 500, currency: 'USD' }, false],
    ['an extra key on the asking side', usd500, { ...usd500, memo: 'x' }, false],
    ['an amount missing on the asking side', usd500, { currency: 'USD', recipientDomain: 'partner.example' }, false],
    ['an amount that is not a number', usd500, { ...usd500, amount: '500' }, false],
    ['an approval without an amount, asked with one', { currency: 'USD' }, { currency: 'USD', amount: 1 }, false],
    ['an approval without an amount, asked without one', { currency: 'USD' }, { currency: 'USD' }, true],
    ['empty contexts', {}, {}, true],
    ['an empty approval, asked with anything', {}, { to: 'x' }, false],
    ['nested objects, equal', { to: { domain: 'a', cc: ['b', 'c'] } }, { to: { cc: ['b', 'c'], domain: 'a' } }, true],
    ['nested arrays in another order', { to: { cc: ['b', 'c'] } }, { to: { cc: ['c', 'b'] } }, false],
    ['a nested key more', { to: { domain: 'a' } }, { to: { domain: 'a', bcc: 'z' } }, false],
    ['null against a missing key', { note: null }, {}, false],
    ['null against null', { note: null }, { note: null }, true],
    ['a number against its string', { invoice: 7 }, { invoice: '7' }, false],
    ['a non-numeric approved amount only matches itself', { amount: 'all' }, { amount: 'all' }, true],
    ['a non-numeric approved amount against a number', { amount: 'all' }, { amount: 1 }, false],
  ];
  it.each(cases)('%s', (_name, approved, asked, covers) => {
    const result = approvalCovers(approved, asked);
    expect(result.covers).toBe(covers);
    if (!result.covers) expect(result.reason).toMatch(/context|amount/);
  });

  it('says which key did not match', () => {
    expect(approvalCovers(usd500, { ...usd500, currency: 'EUR' })).toEqual({ covers: false, reason: 'context.currency is "EUR"; the approval was for "USD"' });
    expect(approvalCovers(usd500, { ...usd500, amount: 501 })).toEqual({ covers: false, reason: 'amount 501 is more than the approved 500' });
    expect(approvalCovers({}, { amount: 1 })).toEqual({ covers: false, reason: 'the approval was for no amount; context.amount must be absent' });
  });
});

describe('jsonEqual', () => {
  it.each([
    [1, 1, true],
    [1, 2, false],
    ['a', 'a', true],
    [null, null, true],
    [null, {}, false],
    [{}, null, false],
    [[], {}, false],
    [{}, [], false],
    [[1, [2]], [1, [2]], true],
    [[1], [1, 1], false],
    [{ a: 1 }, { b: 1 }, false],
    [{ a: undefined }, { b: undefined }, false],
    [true, 'true', false],
  ] as [unknown, unknown, boolean][])('%j vs %j', (a, b, equal) => {
    expect(jsonEqual(a, b)).toBe(equal);
  });
});
