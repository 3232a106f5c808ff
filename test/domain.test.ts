import { describe, expect, it } from 'vitest';
import type { Agent, Grant } from '../src/domain/agent.js';
import { planAction, planLift } from '../src/domain/actions.js';
import { auditEntryHash, canonicalJson, GENESIS_HASH } from '../src/domain/audit-chain.js';
import { decide } from '../src/domain/decide.js';
import { globMatches, SCOPE_PATTERN } from '../src/domain/scope.js';
import { signPayload, verifySignature } from '../src/webhooks/signature.js';

const now = new Date('2026-11-27T03:00:00Z');
const grant = (id: string, scope: string, extra: Partial<Grant> = {}): Grant => ({
  id,
  scope,
  constraints: {},
  keepInContainment: false,
  expiresAt: null,
  grantedBy: 'api:test',
  grantedAt: now,
  ...extra,
});
const agent = (grants: Grant[], extra: Partial<Agent> = {}): Agent => ({
  id: 'bot',
  name: 'Bot',
  owner: 'o@example.com',
  riskTier: 'high',
  status: 'active',
  version: 1n,
  grants,
  activeActions: [],
  updatedAt: now,
  ...extra,
});

describe('scope globs', () => {
  it.each([
    ['payments:*', 'payments:transfer', true],
    ['payments:*', 'payments:refund:partial', true],
    ['payments:*', 'payment:transfer', false],
    ['*:write', 'crm:write', true],
    ['*:write', 'crm:read', false],
    ['crm:write', 'crm:write', true],
    ['crm.v2:write', 'crmxv2:write', false],
    ['a*b', 'a:x:b', true],
  ])('%s matches %s: %s', (glob, value, expected) => {
    expect(globMatches(glob, value)).toBe(expected);
  });

  it('accepts well-formed scopes only', () => {
    for (const ok of ['payments:transfer', '*', '*:write', 'mail:send:external', 'a.b_c-d']) expect(SCOPE_PATTERN.test(ok)).toBe(true);
    for (const bad of ['', 'Payments:x', 'a::b', ':a', 'a:', 'a b', 'pay*ments', 'é:x']) expect(SCOPE_PATTERN.test(bad)).toBe(false);
  });
});

describe('decide', () => {
  const base = agent([grant('g1', 'payments:transfer', { constraints: { maxAmount: 100, currencies: ['USD'] } }), grant('g2', 'payments:*')]);

  it('allows through any covering grant that passes, and lists every reason when none does', () => {
    // g1 fails its constraint but the broader g2 has none: allowed, by g2.
    const d = decide(base, { agentId: 'bot', action: 'payments:transfer', context: { amount: 500, currency: 'USD' } }, now);
    expect(d).toMatchObject({ decision: 'allow', grantId: 'g2' });
    const narrow = agent([grant('g1', 'payments:transfer', { constraints: { maxAmount: 100, currencies: ['USD'] } })]);
    const denied = decide(narrow, { agentId: 'bot', action: 'payments:transfer', context: { amount: 500, currency: 'EUR' } }, now);
    expect(denied.decision).toBe('deny');
    expect(denied.reasons.map((r) => r.message)).toEqual([
      'amount 500 exceeds maxAmount 100 of grant payments:transfer',
      'currency EUR is not one of USD allowed by grant payments:transfer',
    ]);
  });

  it('fails closed when the view is stale, whatever the grants say', () => {
    expect(decide(base, { agentId: 'bot', action: 'payments:refund', context: {} }, now, false)).toMatchObject({
      decision: 'deny',
      reasons: [{ code: 'view_stale' }],
    });
  });

  it('a narrow on a specific scope denies it even when a broader grant covers it', () => {
    const a = agent([grant('g2', 'payments:*')]);
    const plan = planAction(a, { kind: 'narrow', scopes: ['payments:transfer'], reason: 'r', actor: 'x' }, now);
    // No grant is exactly payments:transfer, so none is taken away, but the pattern still denies.
    expect(plan.grantsTakenAway).toEqual([]);
    const narrowed = agent(a.grants, {
      status: 'narrowed',
      activeActions: [{ id: 'n1', kind: 'narrow', scopes: ['payments:transfer'], reason: 'r', actor: 'x', createdAt: now, expiresAt: null, touched: [] }],
    });
    expect(decide(narrowed, { agentId: 'bot', action: 'payments:transfer', context: {} }, now).decision).toBe('deny');
    expect(decide(narrowed, { agentId: 'bot', action: 'payments:refund', context: {} }, now).decision).toBe('allow');
  });
});

describe('planning actions', () => {
  const a = agent([grant('g1', 'crm:write'), grant('g2', 'mail:send', { keepInContainment: true })]);

  it('contain takes every grant not kept in containment; restore gives back exactly those', () => {
    const plan = planAction(a, { kind: 'contain', reason: 'r', actor: 'x' }, now);
    expect(plan.grantsTakenAway).toEqual([{ grantId: 'g1', scope: 'crm:write' }]);
    const contained = agent(a.grants, {
      status: 'contained',
      activeActions: [{ id: 'c1', kind: 'contain', scopes: [], reason: 'r', actor: 'x', createdAt: now, expiresAt: null, touched: plan.grantsTakenAway }],
    });
    const restore = planAction(contained, { kind: 'restore', reason: 'ok', actor: 'y' }, now);
    expect(restore.grantsGivenBack).toEqual([{ grantId: 'g1', scope: 'crm:write' }]);
    expect(restore.lifts.map((l) => l.id)).toEqual(['c1']);
    expect(planLift(contained, 'c1', now).statusAfter).toBe('active');
  });

  it('refuses what makes no sense, with a reason', () => {
    expect(() => planAction(a, { kind: 'restore', reason: 'r', actor: 'x' }, now)).toThrow(/nothing to restore/);
    expect(() => planAction(a, { kind: 'revoke', reason: 'r', actor: 'x', ttlMs: 1000 }, now)).toThrow(/ttl applies to narrow and contain/);
    expect(() => planAction(a, { kind: 'narrow', scopes: ['hr:*'], reason: 'r', actor: 'x' }, now)).toThrow(/matches none/);
    const revoked = agent(a.grants, { status: 'revoked', activeActions: [{ id: 'r1', kind: 'revoke', scopes: [], reason: 'r', actor: 'x', createdAt: now, expiresAt: null, touched: [] }] });
    expect(() => planAction(revoked, { kind: 'contain', reason: 'r', actor: 'x' }, now)).toThrow(/revoked/);
  });
});

describe('audit chain hashing', () => {
  it('is independent of key order and changes with any content or with the previous hash', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}');
    const entry = { seq: '1', at: now, actor: 'a', action: 'x', subject: 's', payload: { k: 1, j: 2 } };
    const h = auditEntryHash(GENESIS_HASH, entry);
    expect(auditEntryHash(GENESIS_HASH, { ...entry, payload: { j: 2, k: 1 } })).toBe(h);
    expect(auditEntryHash(GENESIS_HASH, { ...entry, actor: 'b' })).not.toBe(h);
    expect(auditEntryHash('1'.repeat(64), entry)).not.toBe(h);
  });
});

describe('webhook signatures', () => {
  const secret = 'whsec_0123456789abcdef';
  const body = '{"id":"1"}';
  it('verifies its own signatures and refuses tampering, old timestamps and garbage', () => {
    const header = signPayload(secret, body, 1_800_000_000);
    expect(verifySignature(secret, body, header, 1_800_000_010)).toEqual({ ok: true, timestamp: 1_800_000_000 });
    expect(verifySignature(secret, `${body} `, header, 1_800_000_010).ok).toBe(false);
    expect(verifySignature(secret, body, header, 1_800_000_000 + 301)).toMatchObject({ ok: false, reason: expect.stringContaining('window') });
    expect(verifySignature(secret, body, undefined, 1_800_000_000)).toMatchObject({ ok: false, reason: 'missing signature header' });
    expect(verifySignature(secret, body, 'nonsense', 1_800_000_000).ok).toBe(false);
    expect(verifySignature(secret, body, 't=abc,v1=00', 1_800_000_000).ok).toBe(false);
    // Rotation: a header carrying the old and the new secret's signatures verifies with either.
    const rotated = `${header},v1=${signPayload('whsec_new_secret_0123', body, 1_800_000_000).split('v1=')[1]}`;
    expect(verifySignature('whsec_new_secret_0123', body, rotated, 1_800_000_000).ok).toBe(true);
  });
});

describe('the decision body fast path', () => {
  it('accepts only what the zod schema accepts, with the same result', async () => {
    const { quickDecisionInput } = await import('../src/http/routes/decisions.routes.js');
    const { decisionInputSchema } = await import('../src/api/schemas.js');
    const bodies: unknown[] = [
      { agentId: 'bot', action: 'payments:transfer' },
      { agentId: 'bot', action: 'payments:transfer', context: { amount: 5, currency: 'USD', note: 'x' } },
      { agentId: 'bot', action: 'payments:*' },
      { agentId: 'bot', action: 'Payments:transfer' },
      { agentId: '', action: 'a' },
      { agentId: 'x'.repeat(257), action: 'a' },
      { agentId: 'bot', action: 'a', extra: 1 },
      { agentId: 'bot', action: 'a', context: [] },
      { agentId: 'bot', action: 'a', context: null },
      { agentId: 'bot', action: 'a', context: { amount: '5' } },
      { agentId: 'bot', action: 'a', context: { amount: -1 } },
      { agentId: 'bot', action: 'a', context: { currency: 5 } },
      { agentId: 'bot', action: 'a', context: { ['k'.repeat(101)]: 1 } },
      { agentId: 5, action: 'a' },
      [],
      null,
      'text',
    ];
    for (const body of bodies) {
      const quick = quickDecisionInput(body);
      const zod = decisionInputSchema.safeParse(body);
      // The fast path must never accept an invalid body; for these it also takes every valid one.
      expect(quick !== undefined, JSON.stringify(body)).toBe(zod.success);
      if (quick) expect(quick).toEqual({ ...zod.data, context: zod.data?.context ?? {} });
    }
  });
});

describe('approval callback hosts', () => {
  // Which hosts the allow-list names; with no list, the address check decides (test/callback-ssrf.test.ts).
  it('an allow-list names exact hosts (with a port) and *.domain', async () => {
    const { callbackHostListed } = await import('../src/net/callback-guard.js');
    const listed = (url: string, allowed: readonly string[]) => callbackHostListed(new URL(url), allowed);
    expect(listed('https://anything.example.org/x', [])).toBe(false);
    const allowed = ['hooks.example.com', '*.agents.example.com', '127.0.0.1:8080'];
    expect(listed('https://hooks.example.com/cb', allowed)).toBe(true);
    expect(listed('https://a.agents.example.com/cb', allowed)).toBe(true);
    expect(listed('http://127.0.0.1:8080/cb', allowed)).toBe(true);
    expect(listed('http://127.0.0.1:9090/cb', allowed)).toBe(false);
    expect(listed('https://hooks.example.com.evil.net/cb', allowed)).toBe(false);
    expect(listed('http://169.254.169.254/latest/meta-data', allowed)).toBe(false);
  });
});
