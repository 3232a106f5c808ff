import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkSelector, globToLike, matchesSelector, selectorText } from '../../src/domain/fleet-selector.js';
import { scopesOverlap } from '../../src/domain/scope.js';
import { parseCommand } from '../../src/chat/command-parser.js';
import type { Agent } from '../../src/domain/agent.js';

// Issue 17, item 3: the selector of a fleet action and its chat grammar. Pure: no database.

const agent = (over: Partial<Agent> & { scopes?: string[] } = {}): Agent => ({
  id: 'a-1',
  name: 'A',
  owner: 'Vendor@Example.com',
  riskTier: 'high',
  status: 'active',
  version: 1n,
  grants: (over.scopes ?? ['payments:transfer']).map((scope, i) => ({ id: `g${i}`, scope, constraints: {}, keepInContainment: false, expiresAt: null, grantedBy: 'x', grantedAt: new Date(0) })),
  activeActions: [],
  updatedAt: new Date(0),
  ...over,
});

/** LIKE as Postgres evaluates it with escape '\' (for checking that globToLike keeps the glob's meaning). */
function like(value: string, pattern: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '%') re += '[\\s\\S]*';
    else if (c === '_') re += '[\\s\\S]';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`).test(value);
}

describe('the fleet selector', () => {
  it('refuses an empty selector and bad values', () => {
    expect(() => checkSelector({})).toThrow(/empty/);
    expect(() => checkSelector({ scope: 'Pay:*' })).toThrow(/not a scope glob/);
    expect(() => checkSelector({ owner: ' ' })).toThrow(/owner/);
    expect(() => checkSelector({ riskTier: 'extreme' as never })).toThrow(/riskTier/);
    expect(checkSelector({ owner: ' A@B.com ', scope: 'x:*' })).toEqual({ scope: 'x:*', owner: 'a@b.com' });
  });

  it('matches on every key given (AND), a scope by overlap, never a decommissioned agent', () => {
    expect(matchesSelector(agent(), { scope: 'payments:*' })).toBe(true);
    expect(matchesSelector(agent({ scopes: ['*'] }), { scope: 'payments:*' })).toBe(true);
    expect(matchesSelector(agent({ scopes: ['payments:*'] }), { scope: 'payments:transfer' })).toBe(true);
    expect(matchesSelector(agent({ scopes: ['crm:read'] }), { scope: 'payments:*' })).toBe(false);
    expect(matchesSelector(agent(), { scope: 'payments:*', owner: 'vendor@example.com', riskTier: 'high' })).toBe(true);
    expect(matchesSelector(agent(), { scope: 'payments:*', riskTier: 'low' })).toBe(false);
    expect(matchesSelector(agent(), { owner: 'other@example.com' })).toBe(false);
    expect(matchesSelector(agent({ status: 'decommissioned' }), { scope: 'payments:*' })).toBe(false);
  });

  it('has one text form, in a fixed order', () => {
    expect(selectorText({ riskTier: 'high', owner: 'A@x.com', scope: 'p:*' })).toBe('scope:p:* owner:a@x.com risk:high');
  });

  it('turns a glob into a LIKE pattern with the same meaning (the SQL side of the selection)', () => {
    const scope = fc.stringMatching(/^[a-z_*]{1,3}(:[a-z_*]{1,3}){0,2}$/);
    fc.assert(
      fc.property(scope, scope, (glob, grant) => {
        const sqlSide = like(grant, globToLike(glob)) || like(glob, globToLike(grant));
        expect(sqlSide).toBe(scopesOverlap(glob, grant));
      }),
      { numRuns: 500 },
    );
  });
});

describe('the fleet grammar', () => {
  it('reads leading key:value words as a selector', () => {
    expect(parseCommand('contain scope:payments:* risk:HIGH owner:a@b.com --ttl 2h --dry-run vendor hacked')).toEqual({
      ok: true,
      command: { kind: 'fleet', action: 'contain', selector: { scope: 'payments:*', riskTier: 'high', owner: 'a@b.com' }, ttlMs: 7_200_000, dryRun: true, reason: 'vendor hacked' },
    });
    expect(parseCommand('narrow owner:a@b.com payments:*,crm:write why')).toMatchObject({ ok: true, command: { kind: 'fleet', action: 'narrow', selector: { owner: 'a@b.com' }, scopes: ['payments:*', 'crm:write'], reason: 'why' } });
    expect(parseCommand('restore scope:payments:*')).toMatchObject({ ok: true, command: { kind: 'fleet', action: 'restore', reason: 'no reason given' } });
    // An agent id has no colon: the single-agent commands are unchanged.
    expect(parseCommand('contain pay-bot why')).toMatchObject({ ok: true, command: { kind: 'contain', agentId: 'pay-bot' } });
  });

  it('refuses unknown keys, repeats, empty values and the options that do not apply', () => {
    const error = (text: string) => {
      const r = parseCommand(text);
      return r.ok ? 'parsed' : r.error;
    };
    expect(error('contain team:x')).toContain('unknown selector key "team:"');
    expect(error('contain scope:a:* colour:red')).toContain('unknown selector key');
    expect(error('contain scope:a scope:b')).toContain('given twice');
    expect(error('contain owner:')).toContain('needs a value');
    expect(error('contain risk:huge')).toContain('not a risk tier');
    expect(error('restore scope:a --ttl 2h')).toContain('unknown option --ttl');
    expect(error('revoke scope:a:*')).toContain('not an agent id');
    expect(error('narrow scope:a:*')).toContain('narrow needs the scopes');
  });
});
