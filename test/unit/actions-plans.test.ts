import { describe, expect, it } from 'vitest';
import { planAction, planLift, type ActionCommand } from '../../src/domain/actions.js';
import { deriveStatus, grantStatus, type ActiveAction, type Agent, type Grant } from '../../src/domain/agent.js';
import { conflict, ErrorCode, invalidInput, isCodedError, notFound, type CodedError } from '../../src/domain/errors.js';
import { EVENT_TYPES } from '../../src/domain/events.js';

/** What narrow, contain, revoke, restore and an expiry do to an agent's grants, and what they refuse. */

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
  reason: 'r',
  actor: 'slack:U0X',
  createdAt: now,
  expiresAt: null,
  touched: [],
  ...extra,
});
const agent = (grants: Grant[], activeActions: ActiveAction[] = []): Agent => ({
  id: 'bot',
  name: 'Bot',
  owner: 'o@example.com',
  riskTier: 'high',
  status: deriveStatus(activeActions),
  version: 1n,
  grants,
  activeActions,
  updatedAt: now,
});
const cmd = (kind: ActionCommand['kind'], extra: Partial<ActionCommand> = {}): ActionCommand => ({ kind, reason: 'r', actor: 'slack:U0X', ...extra });

function codedError(fn: () => unknown): CodedError {
  try {
    fn();
  } catch (err) {
    if (isCodedError(err)) return err;
    throw err;
  }
  throw new Error('expected a coded error');
}

const crm = grant('g1', 'crm:write');
const mail = grant('g2', 'mail:send', { keepInContainment: true });
const pay = grant('g3', 'payments:transfer');

describe('status', () => {
  it('the strongest action in force wins', () => {
    expect(deriveStatus([])).toBe('active');
    expect(deriveStatus([action('n', 'narrow')])).toBe('narrowed');
    expect(deriveStatus([action('n', 'narrow'), action('c', 'contain')])).toBe('contained');
    expect(deriveStatus([action('c', 'contain'), action('r', 'revoke'), action('n', 'narrow')])).toBe('revoked');
  });

  it('a grant is held by the strongest action that holds it', () => {
    const narrow = action('n', 'narrow', { touched: [{ grantId: 'g1', scope: 'crm:write' }] });
    const contain = action('c', 'contain');
    const revoke = action('r', 'revoke');
    expect(grantStatus(agent([crm], [narrow]), crm, now)).toEqual({ state: 'suspended', heldBy: narrow });
    expect(grantStatus(agent([crm], [narrow, contain]), crm, now)).toEqual({ state: 'suspended', heldBy: contain });
    expect(grantStatus(agent([crm], [contain, narrow]), crm, now)).toEqual({ state: 'suspended', heldBy: contain });
    expect(grantStatus(agent([crm], [narrow, contain, revoke]), crm, now)).toEqual({ state: 'revoked', heldBy: revoke });
    expect(grantStatus(agent([crm], [revoke, contain]), crm, now)).toEqual({ state: 'revoked', heldBy: revoke });
  });

  it('containment spares a grant kept in containment, revoke does not', () => {
    expect(grantStatus(agent([mail], [action('c', 'contain')]), mail, now)).toEqual({ state: 'active' });
    expect(grantStatus(agent([mail], [action('r', 'revoke')]), mail, now).state).toBe('revoked');
    // A narrow that did not touch the grant leaves it alone.
    expect(grantStatus(agent([crm], [action('n', 'narrow', { touched: [{ grantId: 'other', scope: 'crm:write' }] })]), crm, now)).toEqual({ state: 'active' });
  });

  it('a grant expires at its expiry time, not a millisecond later', () => {
    expect(grantStatus(agent([]), grant('g', 'a', { expiresAt: now }), now)).toEqual({ state: 'expired' });
    expect(grantStatus(agent([]), grant('g', 'a', { expiresAt: new Date(now.getTime() + 1) }), now)).toEqual({ state: 'active' });
  });
});

describe('narrow', () => {
  it('takes the usable grants the scopes cover, with a ttl', () => {
    const plan = planAction(agent([crm, mail, pay]), cmd('narrow', { scopes: ['crm:*', 'payments:transfer', 'crm:*'], ttlMs: 60_000 }), now);
    expect(plan).toEqual({
      kind: 'narrow',
      statusBefore: 'active',
      statusAfter: 'narrowed',
      grantsTakenAway: [
        { grantId: 'g1', scope: 'crm:write' },
        { grantId: 'g3', scope: 'payments:transfer' },
      ],
      grantsGivenBack: [],
      lifts: [],
      scopes: ['crm:*', 'payments:transfer'],
      expiresAt: new Date(now.getTime() + 60_000),
    });
  });

  it('does not take a grant already held, and keeps a stronger status', () => {
    const contained = agent([crm, mail], [action('c', 'contain')]);
    const plan = planAction(contained, cmd('narrow', { scopes: ['crm:write', 'mail:send'] }), now);
    expect(plan.grantsTakenAway).toEqual([{ grantId: 'g2', scope: 'mail:send' }]);
    expect(plan.statusAfter).toBe('contained');
    expect(plan.expiresAt).toBeNull();
  });

  it('a broad narrow over a narrower grant counts as hitting it', () => {
    expect(planAction(agent([pay]), cmd('narrow', { scopes: ['payments:*'] }), now).grantsTakenAway).toEqual([{ grantId: 'g3', scope: 'payments:transfer' }]);
  });

  it('refuses no scopes, and a scope that hits no grant, naming the grants', () => {
    const empty = codedError(() => planAction(agent([crm]), cmd('narrow', { scopes: [] }), now));
    expect([empty.code, empty.message]).toEqual([ErrorCode.InvalidInput, 'narrow needs at least one scope']);
    expect(codedError(() => planAction(agent([crm]), cmd('narrow'), now)).message).toBe('narrow needs at least one scope');
    const miss = codedError(() => planAction(agent([crm, mail]), cmd('narrow', { scopes: ['crm:*', 'hr:read'] }), now));
    expect([miss.code, miss.message]).toEqual([ErrorCode.InvalidInput, "scope hr:read matches none of the agent's grants (crm:write, mail:send)"]);
    expect(codedError(() => planAction(agent([]), cmd('narrow', { scopes: ['hr:read'] }), now)).message).toBe("scope hr:read matches none of the agent's grants (none)");
  });
});

describe('contain', () => {
  it('takes every usable grant not kept in containment', () => {
    const expired = grant('g4', 'old:thing', { expiresAt: new Date(now.getTime() - 1) });
    const plan = planAction(agent([crm, mail, expired]), cmd('contain', { ttlMs: 7_200_000 }), now);
    expect(plan).toMatchObject({ statusBefore: 'active', statusAfter: 'contained', grantsTakenAway: [{ grantId: 'g1', scope: 'crm:write' }], expiresAt: new Date(now.getTime() + 7_200_000), scopes: [] });
  });

  it('refuses a second containment, saying since when and by whom', () => {
    const err = codedError(() => planAction(agent([crm], [action('n', 'narrow'), action('c1', 'contain')]), cmd('contain'), now));
    expect([err.code, err.message]).toEqual([ErrorCode.Conflict, 'agent bot is already contained since 2026-11-27T03:00:00.000Z by slack:U0X']);
  });

  it('a narrowed agent can be contained', () => {
    expect(planAction(agent([crm], [action('n', 'narrow')]), cmd('contain'), now).statusBefore).toBe('narrowed');
  });
});

describe('revoke', () => {
  it('takes every grant not already revoked, even kept or expired ones, and never expires', () => {
    const plan = planAction(agent([crm, mail], [action('c', 'contain')]), cmd('revoke'), now);
    expect(plan).toMatchObject({ statusAfter: 'revoked', grantsTakenAway: [{ grantId: 'g1', scope: 'crm:write' }, { grantId: 'g2', scope: 'mail:send' }], expiresAt: null });
  });

  it('refuses a ttl, and anything but restore once revoked', () => {
    const ttl = codedError(() => planAction(agent([crm]), cmd('revoke', { ttlMs: 1000 }), now));
    expect([ttl.code, ttl.message]).toEqual([ErrorCode.InvalidInput, 'ttl applies to narrow and contain only; revoke is not lifted automatically']);
    expect(codedError(() => planAction(agent([crm], [action('c', 'contain')]), cmd('restore', { ttlMs: 1000 }), now)).message).toContain('restore is not lifted');
    const revoked = agent([crm], [action('r', 'revoke')]);
    for (const kind of ['narrow', 'contain', 'revoke'] as const) {
      const err = codedError(() => planAction(revoked, cmd(kind, { scopes: ['crm:write'] }), now));
      expect([err.code, err.message]).toEqual([ErrorCode.Conflict, 'agent bot is revoked; only restore can change it']);
    }
  });
});

describe('restore', () => {
  it('lifts every action and gives back exactly the grants that become usable', () => {
    const expired = grant('g4', 'old:thing', { expiresAt: now });
    const actions = [action('n', 'narrow', { touched: [{ grantId: 'g3', scope: 'payments:transfer' }] }), action('r', 'revoke')];
    const revoked = agent([crm, mail, pay, expired], actions);
    expect(planAction(revoked, cmd('restore'), now)).toEqual({
      kind: 'restore',
      statusBefore: 'revoked',
      statusAfter: 'active',
      grantsTakenAway: [],
      grantsGivenBack: [
        { grantId: 'g1', scope: 'crm:write' },
        { grantId: 'g2', scope: 'mail:send' },
        { grantId: 'g3', scope: 'payments:transfer' },
      ],
      lifts: actions,
      scopes: [],
      expiresAt: null,
    });
  });

  it('refuses an agent with nothing in force', () => {
    const err = codedError(() => planAction(agent([crm]), cmd('restore'), now));
    expect([err.code, err.message]).toEqual([ErrorCode.Conflict, 'agent bot is active; there is nothing to restore']);
  });
});

describe('lifting one action (ttl ran out)', () => {
  it('gives back only what no other action still holds', () => {
    const narrow = action('n', 'narrow', { scopes: ['crm:*'], touched: [{ grantId: 'g1', scope: 'crm:write' }] });
    const contain = action('c', 'contain', { touched: [{ grantId: 'g3', scope: 'payments:transfer' }] });
    const a = agent([crm, mail, pay], [narrow, contain]);
    const liftContain = planLift(a, 'c', now);
    expect(liftContain).toEqual({
      kind: 'contain',
      statusBefore: 'contained',
      statusAfter: 'narrowed',
      grantsTakenAway: [],
      grantsGivenBack: [{ grantId: 'g3', scope: 'payments:transfer' }],
      lifts: [contain],
      scopes: [],
      expiresAt: null,
      lifted: contain,
    });
    expect(planLift(a, 'n', now)).toMatchObject({ kind: 'narrow', statusAfter: 'contained', grantsGivenBack: [], scopes: ['crm:*'] });
  });

  it('refuses an action that is not in force', () => {
    const err = codedError(() => planLift(agent([crm], [action('c', 'contain')]), 'gone', now));
    expect([err.code, err.message]).toEqual([ErrorCode.Conflict, 'action gone is not in force']);
  });
});

describe('contracts other code relies on', () => {
  it('coded errors carry the wire code, the message and details', () => {
    expect(notFound('no agent x')).toMatchObject({ code: 'not_found', message: 'no agent x', name: 'CodedError' });
    expect(conflict('busy', { a: 1 })).toMatchObject({ code: 'conflict', message: 'busy', details: { a: 1 } });
    expect(invalidInput('bad', ['x'])).toMatchObject({ code: 'invalid_input', message: 'bad', details: ['x'] });
    expect(isCodedError(new Error('plain'))).toBe(false);
    expect(isCodedError(conflict('c'))).toBe(true);
    expect(conflict('c')).toBeInstanceOf(Error);
    // The codes REST clients see in error bodies.
    expect(Object.values(ErrorCode)).toEqual(['invalid_input', 'not_found', 'conflict', 'unauthorized', 'forbidden', 'unavailable']);
  });

  it('the outbound event types are the ones webhook subscribers filter on', () => {
    expect(EVENT_TYPES).toEqual([
      'agent.registered',
      'agent.updated',
      'agent.narrowed',
      'agent.contained',
      'agent.revoked',
      'agent.restored',
      'agent.action_expired',
      'agent.decommissioned',
      'approval.requested',
      'approval.decision',
      'approval.escalated',
      'approval.approved',
      'approval.denied',
      'approval.expired',
      'approval.cancelled',
      'trust.pact_saved',
      'trust.evaluation_recorded',
      'trust.score_changed',
      'trust.pact_violated',
    ]);
  });
});
