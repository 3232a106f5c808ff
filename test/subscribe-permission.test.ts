import { describe, expect } from 'vitest';
import { sampleAgent, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { slashCommand } from './support/drive.js';
import type { FakeSlack } from './support/fake-slack.js';
import { authorize } from '../src/chat/authorization.js';
import { parsePolicyText } from '../src/policy/load-policy.js';

/** Issue 10 item 9: subscribing a channel to notices is a policy permission, not open to every role. */
const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }] }
  procurement: { members: [{ slack: U0PROC }] }
permissions:
  contain: [security-oncall]
  packet: [procurement]
channels:
  incidents: { slack: C0INCIDENTS }
`;

let app: TestApp;
let slack: FakeSlack;

const it = appTest({ policy: POLICY, slack: true, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
  await app.call('PUT', '/v1/agents/pay-bot', sampleAgent);
});

const say = async (user: string, text: string, channel: string) => (await slashCommand(app, slack, user, text, { channel })).body as { response_type?: string; text?: string; blocks?: unknown };
const subscriptions = () => app.db.selectFrom('subscriptions').select(['channel', 'agent_pattern', 'kinds']).execute();

describe('subscribe and unsubscribe need permissions.subscribe (default: the contain roles)', () => {
  it('a role that may not contain cannot subscribe a channel: a private refusal, nothing stored', async () => {
    const reply = await say('U0PROC', 'subscribe * approvals', 'C0SHARED');
    const text = JSON.stringify(reply);
    expect(text).toContain('subscribe needs one of these roles: security-oncall');
    expect(text).toContain('you hold: procurement');
    expect(text).toContain('Nothing was changed');
    expect(reply.response_type ?? 'ephemeral').toBe('ephemeral');
    expect(await subscriptions()).toEqual([]);
    // Someone in no role at all gets the same refusal.
    expect(JSON.stringify(await say('U0STRANGER', 'subscribe pay-bot all', 'C0SHARED'))).toContain('subscribe needs one of these roles');
    expect(await subscriptions()).toEqual([]);
  });

  it('a responder may subscribe; others may not unsubscribe it', async () => {
    expect(JSON.stringify(await say('U0ONCALL1', 'subscribe pay-bot incidents', 'C0SEC'))).toContain('This channel gets incidents notices for pay-bot');
    const refused = JSON.stringify(await say('U0PROC', 'unsubscribe pay-bot incidents', 'C0SEC'));
    expect(refused).toContain('subscribe needs one of these roles: security-oncall');
    expect(refused).toContain('Nothing was changed');
    expect(await subscriptions()).toEqual([{ channel: 'C0SEC', agent_pattern: 'pay-bot', kinds: ['incidents'] }]);
    expect(JSON.stringify(await say('U0ONCALL1', 'unsubscribe pay-bot incidents', 'C0SEC'))).toContain('no longer gets notices for pay-bot');
    expect(await subscriptions()).toEqual([]);
  });
});

describe('the policy setting', () => {
  const roles = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }] }
  procurement: { members: [{ slack: U0PROC }] }
`;
  const proc = { platform: 'slack' as const, userId: 'U0PROC', emails: [] };
  const oncall = { platform: 'slack' as const, userId: 'U0ONCALL1', emails: [] };

  it('left out, it is the contain roles; written, it is exactly its roles', () => {
    const byDefault = parsePolicyText(`${roles}permissions: { contain: [security-oncall] }\n`);
    expect(byDefault.permissions.subscribe).toEqual(['security-oncall']);
    expect(authorize(byDefault, oncall, 'subscribe').ok).toBe(true);
    expect(authorize(byDefault, proc, 'subscribe').ok).toBe(false);
    const explicit = parsePolicyText(`${roles}permissions: { contain: [security-oncall], subscribe: [procurement] }\n`);
    expect(authorize(explicit, proc, 'subscribe').ok).toBe(true);
    expect(authorize(explicit, oncall, 'subscribe').ok).toBe(false);
    const nobody = parsePolicyText(`${roles}permissions: { contain: [security-oncall], subscribe: [] }\n`);
    expect(authorize(nobody, oncall, 'subscribe')).toMatchObject({ ok: false, message: 'nobody may subscribe under the current policy' });
  });

  it('an unknown role is an error pointing at permissions.subscribe', () => {
    expect(() => parsePolicyText(`${roles}permissions: { subscribe: [finance] }\n`)).toThrow(/permissions\.subscribe.*unknown role "finance"/s);
  });
});
