import { describe, expect, it } from 'vitest';
import type { ActiveAction, Agent, Grant } from '../../src/domain/agent.js';
import { constraintViolations, decide, type DecisionRequest } from '../../src/domain/decide.js';

/** The runtime decision at its edges: constraint boundaries, every deny reason a caller is shown, and fail-closed cases. */

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
const action = (id: string, kind: ActiveAction['kind'], extra: Partial<ActiveAction> = {}): ActiveAction => ({
  id,
  kind,
  scopes: [],
  reason: 'leak',
  actor: 'slack:U0X',
  createdAt: now,
  expiresAt: null,
  touched: [],
  ...extra,
});
const agent = (grants: Grant[], activeActions: ActiveAction[] = [], extra: Partial<Agent> = {}): Agent => ({
  id: 'bot',
  name: 'Bot',
  owner: 'o@example.com',
  riskTier: 'high',
  status: 'active',
  version: 1n,
  grants,
  activeActions,
  updatedAt: now,
  ...extra,
});
const req = (action: string, context: Record<string, unknown> = {}): DecisionRequest => ({ agentId: 'bot', action, context });
const messages = (d: { reasons: { message: string }[] }) => d.reasons.map((r) => r.message);

describe('maxAmount', () => {
  const a = agent([grant('g1', 'payments:transfer', { constraints: { maxAmount: 100 } })]);

  it('allows exactly the ceiling and denies anything above it', () => {
    expect(decide(a, req('payments:transfer', { amount: 100 }), now)).toEqual({ decision: 'allow', reasons: [{ code: 'granted', message: 'allowed by grant payments:transfer' }], grantId: 'g1' });
    expect(decide(a, req('payments:transfer', { amount: 101 }), now)).toEqual({
      decision: 'deny',
      reasons: [{ code: 'constraint_violated', message: 'amount 101 exceeds maxAmount 100 of grant payments:transfer' }],
    });
    expect(decide(a, req('payments:transfer', { amount: 100.01 }), now).decision).toBe('deny');
  });

  it('requires a numeric amount', () => {
    for (const context of [{}, { amount: '50' }]) {
      expect(messages(decide(a, req('payments:transfer', context), now))).toEqual(['grant payments:transfer has maxAmount 100: context.amount is required']);
    }
  });
});

describe('currencies and recipient domains', () => {
  const a = agent([grant('g1', 'payments:transfer', { constraints: { currencies: ['USD', 'EUR'], recipientDomains: ['partner.example'] } })]);

  it('compare currencies in upper case and domains in lower case', () => {
    expect(decide(a, req('payments:transfer', { currency: 'usd', recipientDomain: 'Partner.Example' }), now).decision).toBe('allow');
  });

  it('name what is wrong or missing', () => {
    expect(messages(decide(a, req('payments:transfer', { currency: 'GBP', recipientDomain: 'attacker.example' }), now))).toEqual([
      'currency GBP is not one of USD, EUR allowed by grant payments:transfer',
      'recipient domain attacker.example is not one of partner.example allowed by grant payments:transfer',
    ]);
    expect(messages(decide(a, req('payments:transfer', { currency: 5, recipientDomain: ['x'] }), now))).toEqual([
      'currency (missing) is not one of USD, EUR allowed by grant payments:transfer',
      'recipient domain (missing) is not one of partner.example allowed by grant payments:transfer',
    ]);
  });

  it('a grant without constraints has no violations', () => {
    expect(constraintViolations(grant('g', 'x'), { amount: 1e12, currency: 'XXX' })).toEqual([]);
  });
});

describe('minTier', () => {
  const a = (tier: Agent['trustTier']) => agent([grant('g1', 'crm:write', { constraints: { minTier: 'gold' } })], [], { trustTier: tier });

  it('allows at the tier and above, denies below and when not scored', () => {
    expect(decide(a('gold'), req('crm:write'), now).decision).toBe('allow');
    expect(decide(a('platinum'), req('crm:write'), now).decision).toBe('allow');
    expect(decide(a('silver'), req('crm:write'), now)).toEqual({
      decision: 'deny',
      reasons: [{ code: 'tier_below_minimum', message: 'grant crm:write needs trust tier gold or better; the agent is silver' }],
    });
    expect(messages(decide(a(null), req('crm:write'), now))).toEqual(['grant crm:write needs trust tier gold or better; the agent is not scored yet']);
    expect(messages(decide(a(undefined), req('crm:write'), now))).toEqual(['grant crm:write needs trust tier gold or better; the agent is not scored yet']);
  });
});

describe('fail closed', () => {
  it('denies an unknown agent, naming it', () => {
    expect(decide(undefined, req('crm:write'), now)).toEqual({ decision: 'deny', reasons: [{ code: 'unknown_agent', message: 'unknown agent bot' }] });
  });

  it('denies an action no grant covers', () => {
    expect(decide(agent([grant('g1', 'crm:read')]), req('crm:write'), now)).toEqual({ decision: 'deny', reasons: [{ code: 'no_grant', message: 'no grant covers crm:write' }] });
  });

  it('a revoked agent is denied with who revoked it, when and why, before anything else', () => {
    const a = agent([grant('g1', 'crm:write', { keepInContainment: true })], [action('c1', 'contain'), action('r1', 'revoke', { reason: 'stolen key' })]);
    expect(decide(a, req('hr:read'), now)).toEqual({
      decision: 'deny',
      reasons: [{ code: 'agent_revoked', message: 'agent is revoked: revoke by slack:U0X at 2026-11-27T03:00:00.000Z: stolen key (action r1)' }],
    });
  });

  it('every narrow that hits the action is listed, with its expiry', () => {
    const until = new Date('2026-11-27T05:00:00Z');
    const a = agent([grant('g1', 'payments:*')], [action('n1', 'narrow', { scopes: ['crm:*', 'payments:*'], expiresAt: until }), action('n2', 'narrow', { scopes: ['payments:transfer'] }), action('n3', 'narrow', { scopes: ['mail:*'] })]);
    expect(decide(a, req('payments:transfer'), now)).toEqual({
      decision: 'deny',
      reasons: [
        { code: 'scope_narrowed', message: 'payments:transfer is narrowed (payments:*) by narrow by slack:U0X at 2026-11-27T03:00:00.000Z until 2026-11-27T05:00:00.000Z: leak (action n1)' },
        { code: 'scope_narrowed', message: 'payments:transfer is narrowed (payments:transfer) by narrow by slack:U0X at 2026-11-27T03:00:00.000Z: leak (action n2)' },
      ],
    });
    expect(decide(a, req('payments:refund'), now).decision).toBe('deny');
    expect(decide(agent([grant('g1', 'mail:send')], [action('n3', 'narrow', { scopes: ['payments:*'] })]), req('mail:send'), now).decision).toBe('allow');
  });
});

describe('grant states', () => {
  it('a contained agent is denied for grants not kept, and allowed, saying so, through a kept one', () => {
    const contain = action('c1', 'contain');
    const denied = decide(agent([grant('g1', 'crm:write')], [contain]), req('crm:write'), now);
    expect(denied).toEqual({
      decision: 'deny',
      reasons: [{ code: 'agent_contained', message: 'agent is contained and grant crm:write is not kept in containment: contain by slack:U0X at 2026-11-27T03:00:00.000Z: leak (action c1)' }],
    });
    const kept = decide(agent([grant('g2', 'crm:*', { keepInContainment: true })], [contain]), req('crm:write'), now);
    expect(kept).toEqual({
      decision: 'allow',
      reasons: [
        { code: 'granted', message: 'allowed by grant crm:*' },
        { code: 'granted', message: 'agent is contained; grant crm:* is kept in containment' },
      ],
      grantId: 'g2',
    });
  });

  it('a grant suspended by a narrow that no longer lists the action is still suspended', () => {
    const narrow = action('n1', 'narrow', { scopes: ['other:*'], touched: [{ grantId: 'g1', scope: 'crm:write' }] });
    expect(decide(agent([grant('g1', 'crm:write')], [narrow]), req('crm:write'), now)).toEqual({
      decision: 'deny',
      reasons: [{ code: 'grant_suspended', message: 'grant crm:write is suspended: narrow by slack:U0X at 2026-11-27T03:00:00.000Z: leak (action n1)' }],
    });
  });

  it('an expired grant is denied with its expiry; a later covering grant still allows', () => {
    const expired = grant('g1', 'crm:write', { expiresAt: now });
    expect(decide(agent([expired]), req('crm:write'), now)).toEqual({
      decision: 'deny',
      reasons: [{ code: 'grant_expired', message: 'grant crm:write expired at 2026-11-27T03:00:00.000Z' }],
    });
    expect(decide(agent([expired, grant('g2', 'crm:*')]), req('crm:write'), now)).toMatchObject({ decision: 'allow', grantId: 'g2' });
  });

  it('the same reason from two grants is listed once', () => {
    const a = agent([grant('g1', 'crm:write', { constraints: { minTier: 'gold' } }), grant('g2', 'crm:write', { constraints: { minTier: 'gold' } }), grant('g3', 'crm:*', { constraints: { minTier: 'gold' } })]);
    expect(messages(decide(a, req('crm:write'), now))).toEqual([
      'grant crm:write needs trust tier gold or better; the agent is not scored yet',
      'grant crm:* needs trust tier gold or better; the agent is not scored yet',
    ]);
  });
});
