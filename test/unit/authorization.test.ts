import { describe, expect, it } from 'vitest';
import { authorize, rolesOf, type ChatIdentity } from '../../src/chat/authorization.js';
import { parsePolicyText } from '../../src/policy/load-policy.js';

/** Who may use which chat command: the policy's roles matched to a Slack id, a Teams id or an email. */

const policy = parsePolicyText(`
roles:
  security-oncall: { members: [{ slack: U0ONCALL, email: Oncall@Example.com }, { teams: AbCdEf00-0000-0000-0000-000000000001 }] }
  ciso: { members: [{ email: ciso@example.com }] }
  procurement: { members: [{ slack: U0PROC }] }
permissions:
  contain: [security-oncall, ciso]
  narrow: [security-oncall]
  restore: { roles: [ciso, security-oncall], secondPerson: true }
  packet: [procurement]
`);

const slack = (userId: string, emails: string[] = []): ChatIdentity => ({ platform: 'slack', userId, emails });
const teams = (userId: string, emails: string[] = []): ChatIdentity => ({ platform: 'teams', userId, emails });

describe('rolesOf', () => {
  it('matches a Slack member by Slack id, only on Slack', () => {
    expect(rolesOf(policy, slack('U0PROC'))).toEqual(['procurement']);
    expect(rolesOf(policy, teams('U0PROC'))).toEqual([]);
    expect(rolesOf(policy, slack('u0proc'))).toEqual([]);
  });

  it('matches a Teams member by Teams id, ignoring case, only on Teams', () => {
    expect(rolesOf(policy, teams('abcdef00-0000-0000-0000-000000000001'))).toEqual(['security-oncall']);
    expect(rolesOf(policy, slack('AbCdEf00-0000-0000-0000-000000000001'))).toEqual([]);
  });

  it('matches by an email the platform resolved, ignoring case, on either platform', () => {
    expect(rolesOf(policy, teams('29:someone', ['CISO@EXAMPLE.COM']))).toEqual(['ciso']);
    expect(rolesOf(policy, slack('U0OTHER', ['oncall@example.com']))).toEqual(['security-oncall']);
    expect(rolesOf(policy, slack('U0OTHER', ['stranger@example.com']))).toEqual([]);
  });

  it('a member without a Teams id is not matched by any Teams id', () => {
    expect(rolesOf(policy, teams('undefined'))).toEqual([]);
  });

  it('lists every role a person holds', () => {
    expect(rolesOf(policy, slack('U0PROC', ['ciso@example.com']))).toEqual(['ciso', 'procurement']);
  });
});

describe('authorize', () => {
  it('grants a command to the roles listed for it and says which roles granted it', () => {
    expect(authorize(policy, slack('U0PROC', ['ciso@example.com']), 'contain')).toEqual({ ok: true, roles: ['ciso'] });
    expect(authorize(policy, slack('U0PROC'), 'packet')).toEqual({ ok: true, roles: ['procurement'] });
  });

  it('refuses a role not listed for the command, naming the roles needed and the roles held', () => {
    expect(authorize(policy, slack('U0PROC'), 'contain')).toEqual({
      ok: false,
      needed: ['security-oncall', 'ciso'],
      message: 'contain needs one of these roles: security-oncall, ciso (you hold: procurement)',
    });
    expect(authorize(policy, slack('U0STRANGER'), 'narrow')).toEqual({
      ok: false,
      needed: ['security-oncall'],
      message: 'narrow needs one of these roles: security-oncall (you hold none)',
    });
  });

  it('restore uses the roles of the restore setting', () => {
    expect(authorize(policy, teams('29:x', ['ciso@example.com']), 'restore')).toEqual({ ok: true, roles: ['ciso'] });
    expect(authorize(policy, slack('U0PROC'), 'restore')).toMatchObject({ ok: false, needed: ['ciso', 'security-oncall'] });
  });

  it('read is open to anyone holding any role, and to nobody else', () => {
    expect(authorize(policy, slack('U0PROC'), 'read')).toEqual({ ok: true, roles: ['procurement'] });
    expect(authorize(policy, slack('U0STRANGER'), 'read')).toEqual({
      ok: false,
      needed: ['security-oncall', 'ciso', 'procurement'],
      message: 'this needs a role in the policy; you hold none',
    });
  });

  it('a policy without roles lets nobody read, and says so', () => {
    expect(authorize(parsePolicyText('roles: {}\n'), slack('U0ONCALL'), 'read')).toEqual({ ok: false, needed: [], message: 'nobody may read agent state under the current policy' });
  });

  it('a command no role may use says so (fail closed)', () => {
    expect(authorize(policy, slack('U0ONCALL'), 'revoke')).toEqual({ ok: false, needed: [], message: 'nobody may revoke under the current policy' });
  });
});
