import { describe, expect, it } from 'vitest';
import { wideningChanges, type GrantShape, type RegistrationShape } from '../../src/domain/widening.js';

const grant = (scope: string, more: Partial<GrantShape> = {}): GrantShape => ({ scope, constraints: {}, keepInContainment: false, expiresAt: null, ...more });
const JAN = new Date('2027-01-01T00:00:00Z');
const FEB = new Date('2027-02-01T00:00:00Z');

const before: RegistrationShape = {
  riskTier: 'high',
  grants: [
    grant('payments:transfer', { constraints: { maxAmount: 1000, currencies: ['USD', 'EUR'], recipientDomains: ['partner.example'], minTier: 'gold' } }),
    grant('mail:send', { keepInContainment: true }),
    grant('crm:write', { expiresAt: JAN }),
  ],
};
const withGrant = (i: number, g: GrantShape): RegistrationShape => ({ ...before, grants: before.grants.map((x, j) => (j === i ? g : x)) });
const transfer = (constraints: GrantShape['constraints']) => withGrant(0, grant('payments:transfer', { constraints }));
const full = before.grants[0]!.constraints;

describe('wideningChanges: what an update to a held agent may not do', () => {
  const widening: [string, RegistrationShape, string, string][] = [
    ['a new grant', { ...before, grants: [...before.grants, grant('payments:refund')] }, 'grants[3]', 'grant payments:refund would be new'],
    ['a higher maxAmount', transfer({ ...full, maxAmount: 1001 }), 'grants[0]', 'raise maxAmount from 1000 to 1001'],
    ['a removed maxAmount', transfer({ ...full, maxAmount: undefined }), 'grants[0]', 'lose its maxAmount limit'],
    ['a new currency', transfer({ ...full, currencies: ['USD', 'EUR', 'GBP'] }), 'grants[0]', 'allow currencies GBP'],
    ['a removed currency list', transfer({ ...full, currencies: undefined }), 'grants[0]', 'lose its currencies limit'],
    ['a new recipient domain', transfer({ ...full, recipientDomains: ['partner.example', 'attacker.example'] }), 'grants[0]', 'allow recipientDomains attacker.example'],
    ['a removed recipient list', transfer({ ...full, recipientDomains: undefined }), 'grants[0]', 'lose its recipientDomains limit'],
    ['a lower minTier', transfer({ ...full, minTier: 'silver' }), 'grants[0]', 'lower minTier from gold to silver'],
    ['a removed minTier', transfer({ ...full, minTier: undefined }), 'grants[0]', 'lose its minTier limit'],
    ['a grant newly kept in containment', withGrant(2, grant('crm:write', { expiresAt: JAN, keepInContainment: true })), 'grants[2]', 'newly be kept in containment'],
    ['a removed expiry', withGrant(2, grant('crm:write')), 'grants[2]', 'lose its expiry'],
    ['a later expiry', withGrant(2, grant('crm:write', { expiresAt: FEB })), 'grants[2]', 'expire later'],
    ['a lower risk tier', { ...before, riskTier: 'medium' }, 'riskTier', 'riskTier would drop from high to medium'],
  ];
  it.each(widening)('%s widens', (_name, after, path, says) => {
    const changes = wideningChanges(before, after);
    expect(changes).toHaveLength(1);
    expect(changes[0]!.path).toBe(path);
    expect(changes[0]!.message).toContain(says);
  });

  const allowed: [string, RegistrationShape][] = [
    ['no change at all', before],
    ['a removed grant', { ...before, grants: before.grants.slice(1) }],
    ['a lower maxAmount', transfer({ ...full, maxAmount: 999 })],
    ['the same maxAmount', transfer({ ...full, maxAmount: 1000 })],
    ['fewer currencies', transfer({ ...full, currencies: ['USD'] })],
    ['fewer recipient domains', transfer({ ...full, recipientDomains: [] })],
    ['a higher minTier', transfer({ ...full, minTier: 'platinum' })],
    ['a limit where there was none', withGrant(1, grant('mail:send', { keepInContainment: true, constraints: { maxAmount: 5 } }))],
    ['no longer kept in containment', withGrant(1, grant('mail:send'))],
    ['an expiry where there was none', withGrant(1, grant('mail:send', { keepInContainment: true, expiresAt: JAN }))],
    ['an earlier expiry', withGrant(2, grant('crm:write', { expiresAt: new Date(JAN.getTime() - 1) }))],
    ['the same expiry as another Date', withGrant(2, grant('crm:write', { expiresAt: new Date(JAN.getTime()) }))],
    ['a higher risk tier', { ...before, riskTier: 'critical' }],
    ['grants in another order', { ...before, grants: [...before.grants].reverse() }],
  ];
  it.each(allowed)('%s does not widen', (_name, after) => {
    expect(wideningChanges(before, after)).toEqual([]);
  });

  it('reports every widening at once, each with its place in the body', () => {
    const after: RegistrationShape = {
      riskTier: 'low',
      grants: [grant('payments:transfer', { constraints: { maxAmount: 5000 } }), grant('mail:send', { keepInContainment: true }), grant('ops:*', { keepInContainment: true })],
    };
    expect(wideningChanges(before, after).map((c) => c.path)).toEqual(['riskTier', 'grants[0]', 'grants[0]', 'grants[0]', 'grants[0]', 'grants[2]']);
  });

  it('a constraint it does not know counts when it changes (fail closed)', () => {
    const odd = { ...before, grants: [grant('x:y', { constraints: { windowHours: 8 } as never })] };
    expect(wideningChanges(odd, { ...odd, grants: [grant('x:y', { constraints: { windowHours: 24 } as never })] })[0]!.message).toContain('windowHours');
    expect(wideningChanges(odd, odd)).toEqual([]);
  });
});
