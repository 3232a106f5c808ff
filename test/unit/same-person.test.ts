import { describe, expect, it } from 'vitest';
import type { ChatIdentity } from '../../src/chat/authorization.js';
import { apiRequester, requesterFromActor, requesterOf, samePerson } from '../../src/confirmations/same-person.js';
import { parsePolicyText } from '../../src/policy/load-policy.js';

/** The second person of a restore is another PERSON: ids on either platform and emails all count. */

const ALICE_AAD = 'aaaaaaaa-0000-0000-0000-00000000a11c';
const policy = parsePolicyText(`
roles:
  security-oncall:
    members:
      - { slack: U0ALICE, teams: "${ALICE_AAD}", email: Alice@Example.com }
      - { slack: U0BOB }
      - { slack: U0DAVE }
  ciso:
    members:
      - { email: dave@example.com, teams: dddddddd-0000-0000-0000-000000000000 }
      - { email: carol@example.com }
permissions:
  restore: { roles: [security-oncall, ciso], secondPerson: true }
`);

const slack = (userId: string, emails: string[] = []): ChatIdentity => ({ platform: 'slack', userId, emails });
const teams = (userId: string, emails: string[] = []): ChatIdentity => ({ platform: 'teams', userId, emails });

describe('samePerson', () => {
  it('one member entry: the Slack id, the Teams id (any case) and the email are one person', () => {
    const asked = requesterOf(policy, slack('U0ALICE'));
    expect(asked.personKey).not.toBeNull();
    expect(samePerson(policy, asked, slack('U0ALICE'))).toBe(true);
    expect(samePerson(policy, asked, teams(ALICE_AAD.toUpperCase()))).toBe(true);
    expect(samePerson(policy, asked, teams('unknown-aad', ['alice@example.com']))).toBe(true);
    expect(samePerson(policy, asked, slack('U0BOB'))).toBe(false);
    expect(samePerson(policy, asked, teams('unknown-aad'))).toBe(false);
  });

  it('two entries tied only by an email resolved for the requester are one person', () => {
    const asked = requesterOf(policy, slack('U0DAVE', ['Dave@example.com']));
    expect(asked.emails).toEqual(['dave@example.com']);
    expect(samePerson(policy, asked, teams('dddddddd-0000-0000-0000-000000000000'))).toBe(true);
    // Without the resolved email nothing ties them: two people, as the policy lists them.
    expect(samePerson(policy, requesterOf(policy, slack('U0DAVE')), teams('dddddddd-0000-0000-0000-000000000000'))).toBe(false);
  });

  it('a shared resolved email is enough even for people outside the policy; a Slack id is case-sensitive', () => {
    const asked = requesterOf(policy, slack('U0STRANGER', ['x@example.com']));
    expect(asked.personKey).toBeNull();
    expect(samePerson(policy, asked, teams('t-1', ['X@example.com']))).toBe(true);
    expect(samePerson(policy, asked, slack('u0stranger'))).toBe(false);
  });

  it('an API token is nobody: any person may confirm what it asked', () => {
    expect(samePerson(policy, apiRequester('platform'), slack('U0ALICE'))).toBe(false);
  });

  it('rows from before the binding: the actor string says who asked', () => {
    expect(requesterFromActor('slack:U0ALICE')).toEqual({ platform: 'slack', userId: 'U0ALICE', emails: [], personKey: null });
    expect(samePerson(policy, requesterFromActor('slack:U0ALICE'), teams(ALICE_AAD))).toBe(true);
    expect(requesterFromActor('api:platform').platform).toBe('api');
  });
});
