import { describe, expect, it } from 'vitest';
import { ACTION_PATTERN, globMatches, SCOPE_PATTERN, scopesOverlap } from '../../src/domain/scope.js';

/** Scope globs: `*` is any run of characters, `:` included; a narrow must overlap a grant to hit anything. */

describe('globMatches', () => {
  it.each([
    ['*', '', true],
    ['*', 'anything:at:all', true],
    ['**', 'x', true],
    ['payments:**', 'payments:', true],
    ['payments:*', 'payments', false],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
    ['a*bc', 'abcbc', true],
    ['a*bc', 'abcbd', false],
    ['*:write', ':write', true],
    ['x*', 'yx', false],
    ['*x', 'xy', false],
    ['ab', 'abc', false],
    ['abc', 'ab', false],
    ['a*', 'a', true],
    ['a*c', 'ac', true],
  ])('%j matches %j: %s', (glob, value, expected) => {
    expect(globMatches(glob, value)).toBe(expected);
  });

  it('stays fast on patterns that make a regular expression backtrack', () => {
    const glob = `${'*:'.repeat(30)}x`;
    const value = `${'a:'.repeat(2000)}b`;
    const started = performance.now();
    expect(globMatches(glob, value)).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('scopesOverlap', () => {
  it('is true when either side covers the other', () => {
    expect(scopesOverlap('payments:*', 'payments:transfer')).toBe(true);
    expect(scopesOverlap('payments:transfer', 'payments:*')).toBe(true);
    expect(scopesOverlap('payments:transfer', 'payments:refund')).toBe(false);
    expect(scopesOverlap('crm:*', 'payments:*')).toBe(false);
  });
});

describe('patterns', () => {
  it('an action is a scope without wildcards', () => {
    expect(ACTION_PATTERN.test('mail:send:external')).toBe(true);
    for (const bad of ['mail:*', '*', 'Mail:send', 'mail::send', 'mail:', ' mail:send', 'mail:send ']) expect(ACTION_PATTERN.test(bad)).toBe(false);
    for (const bad of ['x:*y', ' a', 'a ', 'a:b:']) expect(SCOPE_PATTERN.test(bad)).toBe(false);
  });
});
