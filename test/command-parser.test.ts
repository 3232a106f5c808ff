import { describe, expect, it } from 'vitest';
import { parseCommand, tokenize } from '../src/chat/command-parser.js';

describe('tokenize', () => {
  it('splits on any whitespace and keeps quoted runs, straight or typographic', () => {
    expect(tokenize('  contain   bot\tfoo\n bar ')).toEqual(['contain', 'bot', 'foo', 'bar']);
    expect(tokenize('contain bot "prompt injection" ‘quoted here’ “smart quotes”')).toEqual([
      'contain',
      'bot',
      'prompt injection',
      'quoted here',
      'smart quotes',
    ]);
    expect(tokenize('contain bot "unclosed quote runs on')).toEqual(['contain', 'bot', 'unclosed quote runs on']);
  });
});

describe('parseCommand', () => {
  it.each([
    ['', { kind: 'help' }],
    ['help', { kind: 'help' }],
    ['approvals', { kind: 'approvals' }],
    ['score bot', { kind: 'score', agentId: 'bot' }],
    ['packet bot for Fortress Bank workflow vendor review', { kind: 'packet', agentId: 'bot', audience: 'Fortress Bank', workflow: 'vendor review' }],
    ['packet verify 0F8FAD5B-D9CB-469F-A165-70867728950E', { kind: 'packet-verify', packetId: '0f8fad5b-d9cb-469f-a165-70867728950e' }],
    ['subscribe * scores', { kind: 'subscribe', agentPattern: '*', kinds: ['scores'] }],
    ['unsubscribe bot', { kind: 'unsubscribe', agentPattern: 'bot', kinds: ['scores', 'incidents', 'approvals'] }],
    ['HELP', { kind: 'help' }],
    ['status underwriting-bot', { kind: 'status', agentId: 'underwriting-bot' }],
    ['audit verify', { kind: 'audit-verify' }],
    ['audit underwriting-bot', { kind: 'audit', agentId: 'underwriting-bot' }],
    ['contain underwriting-bot prompt injection suspected', { kind: 'contain', agentId: 'underwriting-bot', dryRun: false, reason: 'prompt injection suspected' }],
    ['contain underwriting-bot --ttl 2h --dry-run why', { kind: 'contain', agentId: 'underwriting-bot', ttlMs: 7_200_000, dryRun: true, reason: 'why' }],
    ['contain bot why --ttl=30m', { kind: 'contain', agentId: 'bot', ttlMs: 1_800_000, dryRun: false, reason: 'why' }],
    ['contain bot —dry-run', { kind: 'contain', agentId: 'bot', dryRun: true, reason: 'no reason given' }],
    ['contain bot -- --ttl is part of the reason', { kind: 'contain', agentId: 'bot', dryRun: false, reason: '--ttl is part of the reason' }],
    ['narrow bot payments:*,crm:write leak', { kind: 'narrow', agentId: 'bot', scopes: ['payments:*', 'crm:write'], dryRun: false, reason: 'leak' }],
    ['narrow bot payments:*,payments:* dup', { kind: 'narrow', agentId: 'bot', scopes: ['payments:*'], dryRun: false, reason: 'dup' }],
    ['revoke bot stolen key 🔑 ünïcödé', { kind: 'revoke', agentId: 'bot', dryRun: false, reason: 'stolen key 🔑 ünïcödé' }],
    ['restore bot "all clear"', { kind: 'restore', agentId: 'bot', dryRun: false, reason: 'all clear' }],
  ])('%j', (text, command) => {
    expect(parseCommand(text)).toEqual({ ok: true, command });
  });

  it.each([
    ['frobnicate bot', 'unknown command "frobnicate"', '/armalo help'],
    ['status', 'status needs an agent', '/armalo status <agent>'],
    ['status bot extra', 'unexpected "extra"', '/armalo status <agent>'],
    ['contain', 'contain needs an agent', '/armalo contain <agent>'],
    ['contain --dry-run', 'contain needs an agent', '/armalo contain'],
    ['contain bot --ttl', '--ttl needs a duration', '/armalo contain'],
    ['contain bot --ttl soon', '--ttl soon: expected a duration', '/armalo contain'],
    ['contain bot --ttl 90d', 'at most 30d', '/armalo contain'],
    ['contain bot --force', 'unknown option --force for contain', '/armalo contain'],
    ['revoke bot --ttl 2h', 'unknown option --ttl for revoke', '/armalo revoke'],
    ['narrow bot', 'narrow needs the scopes', '/armalo narrow'],
    ['narrow bot Payments:X', '"Payments:X" is not a scope', '/armalo narrow'],
    ['contain ../etc', 'is not an agent id', '/armalo contain'],
    ['contain bøt', 'is not an agent id', '/armalo contain'],
    ['packet bot for', 'expected "for <company>"', '/armalo packet'],
    ['packet verify nope', 'packet verify needs a packet id', '/armalo packet'],
  ])('%j is refused with a specific error and the usage', (text, error, usage) => {
    const result = parseCommand(text);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toContain(error);
    expect(result.usage).toContain(usage);
  });
});
