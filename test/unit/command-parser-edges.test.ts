import { describe, expect, it } from 'vitest';
import { MAX_TTL_MS, parseCommand, tokenize, usageText, USAGE } from '../../src/chat/command-parser.js';

/**
 * Edges of the `/armalo` grammar that a person notices: limits, exact refusals and the usage line shown
 * with them. Written to kill the mutants Stryker found surviving (docs/testing.md).
 */

const UUID = '0f8fad5b-d9cb-469f-a165-70867728950e';

function refused(text: string): { error: string; usage: string } {
  const result = parseCommand(text);
  if (result.ok) throw new Error(`expected "${text.slice(0, 60)}" to be refused, got ${JSON.stringify(result.command)}`);
  return result;
}

function accepted(text: string) {
  const result = parseCommand(text);
  if (!result.ok) throw new Error(`expected "${text.slice(0, 60)}" to be accepted, got: ${result.error}`);
  return result.command;
}

describe('usage text', () => {
  it('lists one command per line, each with the prefix', () => {
    const lines = usageText().split('\n');
    // Every command's usage line, then the emergency form of restore.
    expect(lines).toHaveLength(Object.keys(USAGE).length + 1);
    expect(lines.at(-1)).toContain('restore <agent> --break-glass <reason of 20+ characters>');
    expect(lines.every((l) => l.startsWith('/armalo '))).toBe(true);
    expect(usageText('@Armalo').split('\n')[1]).toBe('@Armalo status <agent>');
  });

  it('a refusal of a known command shows only that command’s usage line', () => {
    expect(refused('status').usage).toBe('/armalo status <agent>');
    expect(refused('contain bot --force').usage).toBe(`/armalo ${USAGE.contain}`);
  });

  it('an unknown command shows the whole usage and quotes at most 40 characters of what was typed', () => {
    const r = refused('x'.repeat(100));
    expect(r.error).toBe(`unknown command "${'x'.repeat(40)}"`);
    expect(r.usage).toBe(usageText());
  });
});

describe('tokenize', () => {
  it.each([
    ['“a b”'],
    ['”a b”'],
    ['‘a b’'],
    ['’a b’'],
    ['"a b"'],
    ["'a b'"],
  ])('%s is one token', (quoted) => {
    expect(tokenize(`contain bot ${quoted} c`)).toEqual(['contain', 'bot', 'a b', 'c']);
  });

  it('an invisible byte-order mark does not separate words, so it cannot hide in front of an agent id', () => {
    expect(tokenize('contain \uFEFFbot why')).toEqual(['contain', '\uFEFFbot', 'why']);
    expect(refused('contain \uFEFFbot why').error).toMatch(/agent/i);
    expect(tokenize('contain\u00a0bot\u2003why')).toEqual(['contain', 'bot', 'why']);
  });

  it('a dash inside a word is not an option', () => {
    expect(accepted('contain bot -—not-an-option')).toMatchObject({ kind: 'contain', reason: '-—not-an-option' });
  });
});

describe('options', () => {
  it('--dry-run takes no value', () => {
    expect(refused('contain bot --dry-run=yes').error).toBe('--dry-run takes no value');
  });

  it('--ttl of exactly 30 days is accepted, a second more is not', () => {
    expect(accepted('contain bot --ttl 30d')).toMatchObject({ ttlMs: MAX_TTL_MS });
    expect(refused('contain bot --ttl 30d1s').error).toContain('at most 30d');
  });

  it('an unknown option names the options the command does take', () => {
    expect(refused('contain bot --force').error).toBe('unknown option --force for contain (options: --ttl, --dry-run)');
    expect(refused('revoke bot --ttl 2h').error).toBe('unknown option --ttl for revoke (options: --dry-run)');
    expect(refused('restore bot --ttl=2h').error).toBe('unknown option --ttl for restore (options: --dry-run, --break-glass)');
    expect(refused('contain bot --break-glass because the pager is down tonight').error).toBe('unknown option --break-glass for contain (options: --ttl, --dry-run)');
  });

  it('--break-glass (restore only) takes the rest as a reason of at least 20 characters', () => {
    expect(accepted('restore bot --break-glass the pager is down and payroll is due')).toEqual({ kind: 'restore', agentId: 'bot', dryRun: false, reason: 'the pager is down and payroll is due', breakGlass: true });
    expect(refused('restore bot --break-glass too short').error).toContain('at least 20 characters');
    expect(refused('restore bot --break-glass=yes the pager is down and payroll is due').error).toContain('--break-glass takes no value');
  });

  it('narrow takes --ttl like contain', () => {
    expect(accepted('narrow bot payments:* --ttl 2h')).toEqual({ kind: 'narrow', agentId: 'bot', scopes: ['payments:*'], ttlMs: 7_200_000, dryRun: false, reason: 'no reason given' });
  });
});

describe('agent ids', () => {
  it('a bad agent id is quoted back, at most 80 characters of it', () => {
    expect(refused(`contain ${'!'.repeat(200)}`).error).toBe(`"${'!'.repeat(80)}" is not an agent id (letters, digits, ".", "-", "_")`);
  });

  it.each(['packet', 'score', 'status', 'audit', 'subscribe', 'unsubscribe'])('%s refuses a bad agent id', (sub) => {
    expect(refused(`${sub} ../etc`).error).toContain('is not an agent id');
  });

  it.each(['packet', 'score', 'status', 'audit'])('%s without an agent asks for one', (sub) => {
    expect(refused(sub).error).toBe(`${sub} needs an agent`);
  });
});

describe('commands that take nothing more', () => {
  it.each([
    ['approvals now', 'approvals takes nothing more; unexpected "now"'],
    ['score bot extra', 'score takes only an agent; unexpected "extra"'],
    ['audit bot extra', 'audit takes only an agent (or "verify"); unexpected "extra"'],
    ['audit verify extra', 'audit takes only an agent (or "verify"); unexpected "extra"'],
  ])('%j is refused', (text, error) => {
    expect(refused(text).error).toBe(error);
  });
});

describe('packet', () => {
  it('verify needs exactly one whole packet id', () => {
    expect(accepted(`packet verify ${UUID}`)).toEqual({ kind: 'packet-verify', packetId: UUID });
    for (const text of [`packet verify ggg${UUID}`, `packet verify ${UUID}ggg`, `packet verify ${UUID} extra`, 'packet verify']) {
      expect(refused(text).error).toBe('packet verify needs a packet id');
    }
  });

  it('takes "workflow" and "for" in either order', () => {
    expect(accepted('packet bot workflow vendor review for Fortress Bank')).toEqual({ kind: 'packet', agentId: 'bot', audience: 'Fortress Bank', workflow: 'vendor review' });
  });

  it('trims a quoted audience and refuses a blank one', () => {
    expect(accepted('packet bot for "  Acme  "')).toEqual({ kind: 'packet', agentId: 'bot', audience: 'Acme' });
    expect(refused('packet bot for "   "').error).toContain('expected "for <company>" or "workflow <name>"');
  });

  it('refuses a word other than for/workflow and quotes what it got, at most 60 characters', () => {
    expect(refused('packet bot to Acme').error).toBe('expected "for <company>" or "workflow <name>", got "to Acme"');
    expect(refused(`packet bot to ${'a'.repeat(100)}`).error).toBe(`expected "for <company>" or "workflow <name>", got "to ${'a'.repeat(57)}"`);
  });

  it('keeps at most 200 characters of an audience or workflow', () => {
    const long = 'a'.repeat(300);
    expect(accepted(`packet bot for ${long} workflow ${long}`)).toEqual({ kind: 'packet', agentId: 'bot', audience: 'a'.repeat(200), workflow: 'a'.repeat(200) });
  });
});

describe('subscribe', () => {
  it.each([
    ['subscribe', 'subscribe needs an agent or * (every agent)'],
    ['unsubscribe', 'unsubscribe needs an agent or * (every agent)'],
    ['subscribe bot scores incidents', 'subscribe takes one kind; unexpected "incidents"'],
    ['subscribe bot nonsense', 'unknown kind "nonsense" (scores, incidents, approvals or all)'],
  ])('%j is refused', (text, error) => {
    expect(refused(text).error).toBe(error);
  });

  it('accepts an agent id and a kind in any case', () => {
    expect(accepted('subscribe bot APPROVALS')).toEqual({ kind: 'subscribe', agentPattern: 'bot', kinds: ['approvals'] });
  });
});

describe('narrow scopes', () => {
  it('trims scopes in a quoted list', () => {
    expect(accepted('narrow bot "payments:* , crm:write"')).toMatchObject({ scopes: ['payments:*', 'crm:write'] });
  });

  it('refuses an empty list', () => {
    expect(refused('narrow bot ,,,').error).toContain('is not a scope');
  });

  it('names the bad scope, at most 80 characters of it', () => {
    expect(refused('narrow bot payments:*,BAD').error).toBe('"BAD" is not a scope (lowercase segments separated by ":", "*" as a wildcard)');
    expect(refused(`narrow bot ${'A'.repeat(100)}`).error).toContain(`"${'A'.repeat(80)}" is not a scope`);
  });

  it('accepts a scope of 200 characters, not 201', () => {
    expect(accepted(`narrow bot ${'a'.repeat(200)}`)).toMatchObject({ scopes: ['a'.repeat(200)] });
    expect(refused(`narrow bot ${'a'.repeat(201)}`).error).toContain('is not a scope');
  });

  it('accepts 50 scopes at once, not 51', () => {
    const list = (n: number) => Array.from({ length: n }, (_, i) => `s${i}`).join(',');
    expect(accepted(`narrow bot ${list(50)}`)).toMatchObject({ kind: 'narrow' });
    expect(refused(`narrow bot ${list(51)}`).error).toBe('narrow takes at most 50 scopes at once');
  });
});

describe('reasons', () => {
  it.each(['contain', 'revoke', 'restore'])('%s: a blank quoted reason is "no reason given"', (sub) => {
    expect(accepted(`${sub} bot "   "`)).toMatchObject({ reason: 'no reason given' });
  });

  it('narrow: a missing or blank reason is "no reason given"', () => {
    expect(accepted('narrow bot payments:* "   "')).toMatchObject({ reason: 'no reason given' });
  });

  it.each(['contain bot', 'revoke bot', 'narrow bot payments:*'])('%s: keeps at most 2000 characters of a reason', (prefix) => {
    expect(accepted(`${prefix} ${'r'.repeat(2500)}`)).toMatchObject({ reason: 'r'.repeat(2000) });
  });
});
