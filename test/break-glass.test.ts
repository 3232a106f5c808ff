import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { slashCommand } from './support/drive.js';
import type { FakeSlack } from './support/fake-slack.js';
import { postSigned, slashCommandBody } from './support/slack-requests.js';
import { removePolicy, writePolicy } from './support/slack-policy.js';

// The emergency path when the second person cannot be reached: permissions.breakGlass.
const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }, { slack: U0ONCALL2 }] }
  ciso: { members: [{ slack: U0CISO, email: ciso@example.com }] }
permissions:
  contain: [security-oncall, ciso]
  narrow: [security-oncall, ciso]
  revoke: [ciso]
  restore: { roles: [security-oncall, ciso], secondPerson: true }
  breakGlass: { roles: [ciso] }
  packet: [ciso]
channels:
  incidents: { slack: C0INCIDENTS }
`;
const REASON = 'on-call phone is dead and the CFO needs payroll out tonight';

let app: TestApp;
let slack: FakeSlack;

const command = async (user: string, text: string): Promise<string> => JSON.stringify((await slashCommand(app, slack, user, text)).body);

const status = async (id: string) => (await app.call('GET', `/v1/agents/${id}`)).body.status as string;

const it = appTest({ policy: POLICY, slack: true, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
  for (const id of ['glass-bot', 'refused-bot']) {
    expect((await app.call('PUT', `/v1/agents/${id}`, sampleAgent)).status).toBe(201);
    expect(await command('U0ONCALL1', `contain ${id} suspicious transfers`)).toContain(`Contained ${id}`);
  }
});

describe('break-glass restore', () => {
  it('is refused to someone outside permissions.breakGlass, even with a restore role', async () => {
    const reply = await command('U0ONCALL1', `restore refused-bot --break-glass ${REASON}`);
    expect(reply).toContain('Not allowed');
    expect(reply).toContain('restore with --break-glass needs one of these roles: ciso');
    expect(await status('refused-bot')).toBe('contained');
  });

  it('needs a reason of at least 20 characters, and no --dry-run', async () => {
    expect(await command('U0CISO', 'restore refused-bot --break-glass too short')).toContain('at least 20 characters');
    expect(await command('U0CISO', `restore refused-bot --break-glass --dry-run ${REASON}`)).toContain('cannot be combined with --dry-run');
    expect(await status('refused-bot')).toBe('contained');
  });

  it('lets a break-glass role restore alone, at once, marked in audit, incident, notices and packet', async () => {
    const reply = await command('U0CISO', `restore glass-bot --break-glass ${REASON}`);
    expect(reply).toContain('BREAK-GLASS: restored glass-bot');
    expect(await status('glass-bot')).toBe('active');
    const decision = await app.call('POST', '/v1/decisions', { agentId: 'glass-bot', action: 'payments:refund' });
    expect(decision.body.decision).toBe('allow');

    // The audit entry says break-glass.
    const audit = await app.call('GET', '/v1/audit?agentId=glass-bot');
    const restore = (audit.body.entries as { action: string; payload: Record<string, unknown> }[]).find((e) => e.action === 'agent.restore');
    expect(restore?.payload).toMatchObject({ breakGlass: true, action: expect.objectContaining({ actor: 'slack:U0CISO', reason: REASON }) });

    // A loud notice in the incidents channel, the incident thread marks the step, and every other
    // member of the restore roles hears of it directly.
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => String(p.args.text).includes('BREAK-GLASS restore')), 10_000, 'the loud notice');
    const loud = slack.posts('C0INCIDENTS').filter((p) => String(p.args.text).includes('BREAK-GLASS restore'));
    expect(loud).toHaveLength(1);
    expect(String(loud[0]!.args.text)).toContain('<!here>');
    await waitFor(() => slack.posts('U0ONCALL1').length === 1 && slack.posts('U0ONCALL2').length === 1, 10_000, 'direct messages to the other restorers');
    expect(String(slack.posts('U0ONCALL2')[0]!.args.text)).toContain(REASON);
    expect(slack.posts('U0CISO')).toHaveLength(0);
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => p.args.thread_ts && String(p.args.text).includes('BREAK-GLASS')), 10_000, 'the incident thread line');

    // The next trust packet shows it.
    const created = await app.call('POST', '/v1/trust-packets', { agentId: 'glass-bot', audience: 'Fortress Bank' });
    expect(created.status).toBeLessThan(300);
    const id = created.body.id as string;
    await waitFor(async () => (await app.call('GET', `/v1/trust-packets/${id}`)).body.status === 'ready', 10_000, 'the packet');
    const md = await app.call('GET', `/v1/trust-packets/${id}?format=markdown`);
    expect(String(md.body)).toContain('BREAK-GLASS: no second person');
  });

  it('is refused to everyone when the policy names no break-glass roles', async ({ startApp }) => {
    const policyFile = writePolicy(POLICY.replace('  breakGlass: { roles: [ciso] }\n', ''));
    const other = await startApp({ env: { ARMALO_POLICY_FILE: policyFile, ARMALO_ROLE: 'web' } });
    try {
      const res = await postSigned(other.url, slashCommandBody({ user_id: 'U0CISO', text: `restore refused-bot --break-glass ${REASON}`, response_url: slack.responseUrl('r2') }));
      expect(JSON.stringify(res.body)).toContain('nobody may restore with --break-glass under the current policy');
      expect(await status('refused-bot')).toBe('contained');
    } finally {
      await other.stop();
      removePolicy(policyFile);
    }
  });
});
