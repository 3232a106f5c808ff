import { writeFileSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { sampleAgent, TOKEN, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { signPayload } from '../src/webhooks/signature.js';
import { isJobName, parseJob, queueOf } from '../src/queue/job-contracts.js';

/**
 * Issue 13 item 4: what each service writes into the outbox is what its worker accepts. The web
 * role alone runs here, so every row stays in the outbox to be read back.
 */
const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }, { slack: U0ONCALL2 }] }
  ciso: { members: [{ slack: U0CISO }] }
permissions:
  contain: [security-oncall, ciso]
  narrow: [security-oncall, ciso]
  revoke: [ciso]
  restore: { roles: [security-oncall, ciso], secondPerson: true }
  breakGlass: { roles: [ciso] }
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [ciso]
    remindAfter: 1h
    escalateAfter: 2h
    escalateTo: [security-oncall]
    expireAfter: 3h
consequences:
  - id: critical-violation
    when: { pactViolated: critical }
    then: { contain: true }
channels:
  incidents: { slack: C0INCIDENTS }
`;
const SECRET = 'armalo_inbound_secret_0123456789';
const ADMIN = 'tok_contracts_admin_0123456789abcdef';
let app: TestApp;
let policyFile: string;

const it = appTest({
  policy: POLICY,
  env: {
    ARMALO_ROLE: 'web',
    ARMALO_WEBHOOK_SECRET: SECRET,
    ARMALO_API_TOKENS: `platform:${TOKEN},ops:${ADMIN}:admin`,
    ARMALO_EVENTS_WEBHOOK_URL: 'http://127.0.0.1:9/events',
    ARMALO_EVENTS_WEBHOOK_SECRET: 'armalo_events_secret_0123456789',
    ARMALO_CALLBACK_HOSTS: '127.0.0.1',
  },
  appOptions: { policyReload: { watchFiles: false } },
});
it.beforeAll(({ app: started, policyFile: file }) => {
  app = started;
  policyFile = file!;
});

const ciso = { platform: 'slack' as const, userId: 'U0CISO', emails: [] };
const oncall = { platform: 'slack' as const, userId: 'U0ONCALL1', emails: [] };

async function armaloWebhook(event: unknown): Promise<void> {
  const body = JSON.stringify(event);
  const res = await fetch(`${app.url}/webhooks/armalo`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-armalo-signature': signPayload(SECRET, body, Math.floor(Date.now() / 1000)) }, body });
  expect(res.status).toBeLessThan(300);
}

describe('every job a service writes parses with its contract', () => {
  it('agents, incidents, approvals, trust, packets, confirmations, break-glass, decommission and live policy', async () => {
    for (const id of ['held-bot', 'glass-bot', 'confirm-bot', 'gone-bot']) expect((await app.call('PUT', `/v1/agents/${id}`, sampleAgent)).status).toBeLessThan(300);
    // Agents: a contain with a ttl (lift timer, incident notice, events).
    expect((await app.call('POST', '/v1/agents/held-bot/actions', { action: 'contain', reason: 'hold', ttl: 3600 })).status).toBe(201);
    // Approvals: a request with a callback, then its decision (cards, timers, cancel, callback).
    const request = await app.call('POST', '/v1/approval-requests', { agentId: 'glass-bot', action: 'payments:transfer', context: { amount: 50_000 }, justification: 'quarter close', callbackUrl: 'http://127.0.0.1:9/cb' });
    expect(request.status).toBe(201);
    await app.approvals.decide(request.body.id, { actor: 'slack:U0CISO', platform: 'slack', slack: 'U0CISO', emails: [] }, 'approve', null);
    // Trust: a critical violation from Armalo (consequences, trust notice, score change).
    await armaloWebhook({ id: 'evt-contracts-1', type: 'pact.violated', createdAt: new Date().toISOString(), data: { agentId: 'confirm-bot', pactId: 'no-pii', severity: 'critical' } });
    // Packets.
    expect((await app.call('POST', '/v1/trust-packets', { agentId: 'glass-bot' })).status).toBeLessThan(300);
    // A restore that needs a second person, and a break-glass restore.
    await app.commands.handle(oncall, 'contain glass-bot smoke seen');
    await app.commands.handle(oncall, 'contain confirm-bot smoke seen');
    await app.commands.handle(oncall, 'restore confirm-bot false alarm, the pact check was misconfigured');
    await app.commands.handle(ciso, 'restore glass-bot --break-glass on-call phone is dead and payroll must go out');
    // Decommission.
    expect((await app.call('DELETE', '/v1/agents/gone-bot', undefined, { token: ADMIN })).status).toBe(200);
    // Live policy: an invalid file is announced.
    writeFileSync(policyFile, 'roles: [this is not a policy');
    expect((await app.reloadPolicy()).outcome).toBe('rejected');

    const rows = await app.db.selectFrom('outbox').select(['queue', 'job_name', 'payload']).execute();
    for (const row of rows) {
      expect(isJobName(row.job_name), row.job_name).toBe(true);
      if (!isJobName(row.job_name)) continue;
      expect(row.queue, row.job_name).toBe(queueOf(row.job_name));
      expect(() => parseJob(row.job_name as never, row.payload), row.job_name).not.toThrow();
    }
    const written = new Set(rows.map((r) => r.job_name));
    for (const name of [
      'agent.registered', 'agent.contained', 'approval.requested', 'approval.approved', 'trust.pact_violated',
      'lift-action', 'incident-update', 'approval-cards', 'approval-timer', 'approval-timers-cancel', 'approval-callback',
      'consequences', 'trust-notice', 'build-packet', 'confirmation-request', 'break-glass', 'agent-decommissioned', 'policy-invalid',
    ]) {
      expect(written, name).toContain(name);
    }
  });
});
