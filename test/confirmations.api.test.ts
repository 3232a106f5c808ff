import { describe, expect } from 'vitest';
import { sql } from 'kysely';
import { OTHER_TOKEN, sampleAgent, waitFor, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { inTransaction, waitForLockWait } from './support/locks.js';
import { clickButton, decisionOf, textOf } from './support/drive.js';
import type { FakeSlack } from './support/fake-slack.js';

// Issue 10, item 6 (restore over the API): an API token is not a person, so a restore under
// `secondPerson` waits for one, asked in the incident thread; GET /v1/confirmations/{id} tells how it ended.
const POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }, { slack: U0ONCALL2 }] }
  procurement: { members: [{ slack: U0PROC }] }
permissions:
  contain: [security-oncall]
  narrow: [security-oncall]
  revoke: [security-oncall]
  restore: { roles: [security-oncall], secondPerson: true, freshEvaluation: true }
channels:
  incidents: { slack: C0INCIDENTS }
`;

let app: TestApp;
let slack: FakeSlack;

const it = appTest({ policy: POLICY, slack: true, appOptions: { relayPollMs: 200 } });
it.beforeAll(({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
});

const click = async (user: string, value: string): Promise<string> => textOf(await clickButton(app, slack, user, 'armalo_confirm', value));

const decision = async (agentId: string) => (await decisionOf(app, agentId, 'crm:write')).decision;
const freshEvaluation = (agentId: string, id: string) =>
  app.call('POST', `/v1/agents/${agentId}/evaluations`, { id, dimension: 'safety', passed: true, observedAt: new Date().toISOString(), source: 'redteam' });

describe('POST /v1/agents/{id}/actions restore under the policy', () => {
  it('needs a fresh evaluation, then answers 202 awaiting_confirmation; a person with the restore role confirms in the thread', async () => {
    await app.call('PUT', '/v1/agents/api-bot', sampleAgent);
    expect((await app.call('POST', '/v1/agents/api-bot/actions', { action: 'contain', reason: 'drill' })).status).toBe(201);

    // freshEvaluation binds the token as it binds people: 409, nothing changed.
    const stale = await app.call('POST', '/v1/agents/api-bot/actions', { action: 'restore', reason: 'all clear' });
    expect(stale.status).toBe(409);
    expect(stale.body.error.message).toContain('fresh evaluation');
    expect(await app.db.selectFrom('confirmations').select('id').where('agent_id', '=', 'api-bot').execute()).toHaveLength(0);

    expect((await freshEvaluation('api-bot', 'api-bot-eval-1')).status).toBe(201);
    const asked = await app.call('POST', '/v1/agents/api-bot/actions', { action: 'restore', reason: 'all clear' });
    expect(asked.status).toBe(202);
    expect(asked.body).toMatchObject({ status: 'awaiting_confirmation', confirmationId: expect.any(String) });
    const id = asked.body.confirmationId as string;
    // Nothing restored yet: the token is not a person.
    expect(await decision('api-bot')).toBe('deny');
    const incidentId = (await app.db.selectFrom('incidents').select('id').where('agent_id', '=', 'api-bot').where('status', '=', 'open').executeTakeFirstOrThrow()).id;
    const pending = await app.call('GET', `/v1/confirmations/${id}`);
    expect(pending.status).toBe(200);
    expect(pending.body).toMatchObject({ id, status: 'pending', agentId: 'api-bot', kind: 'restore', requestedBy: 'api:platform', incidentId });
    expect(pending.body.decidedBy).toBeUndefined();

    // Asked in the incident's thread, saying who asked and who may confirm.
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => textOf(p.args).includes(id)), 5000, 'the confirmation request in Slack');
    const request = slack.posts('C0INCIDENTS').find((p) => textOf(p.args).includes(id))!;
    expect(request.args.thread_ts).toBeDefined();
    expect(textOf(request.args)).toContain('API token `platform` asks to restore');
    expect(textOf(request.args)).toContain('anyone with the restore role may confirm');

    // Only the policy decides who: a role holder other than the restore roles is refused.
    expect(await click('U0PROC', id)).toContain('Not allowed');
    expect(await decision('api-bot')).toBe('deny');
    expect(await click('U0ONCALL1', id)).toContain('Restored api-bot');
    expect(await decision('api-bot')).toBe('allow');

    const confirmed = await app.call('GET', `/v1/confirmations/${id}`);
    expect(confirmed.body).toMatchObject({ status: 'confirmed', decidedBy: 'slack:U0ONCALL1', decidedAt: expect.any(String) });
    const audit = await app.call('GET', '/v1/audit?agentId=api-bot&limit=1');
    expect(audit.body.entries[0]).toMatchObject({ action: 'agent.restore', actor: 'slack:U0ONCALL1' });
    expect(audit.body.entries[0].payload.action.reason).toContain('requested by api:platform');
  });

  it('a retry with the same Idempotency-Key answers the same 202 and confirmation: one question in the thread, even for concurrent retries', async () => {
    await app.call('PUT', '/v1/agents/retry-restore-bot', sampleAgent);
    expect((await app.call('POST', '/v1/agents/retry-restore-bot/actions', { action: 'contain', reason: 'drill' })).status).toBe(201);
    expect((await freshEvaluation('retry-restore-bot', 'retry-restore-bot-eval-1')).status).toBe(201);
    const restore = (key: string) => app.call('POST', '/v1/agents/retry-restore-bot/actions', { action: 'restore', reason: 'all clear' }, { headers: { 'idempotency-key': key } });
    const asked = (await app.db.selectFrom('confirmations').select('id').where('agent_id', '=', 'retry-restore-bot').execute()).map((r) => r.id);
    const cards = async () => (await app.db.selectFrom('outbox').select('payload').where('job_name', '=', 'confirmation-request').execute()).filter((r) => asked.includes((r.payload as { confirmationId: string }).confirmationId)).length;

    // Two retries in flight at once (a client timing out and retrying): one confirmation between them.
    const [a, b] = await Promise.all([restore('restore-retry-1'), restore('restore-retry-1')]);
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.body.confirmationId).toBe(b.body.confirmationId);
    const first = a.body.replayed ? b : a;
    expect(first.body.replayed).toBeUndefined();
    expect((a.body.replayed ? a : b).body).toEqual({ ...first.body, replayed: true });
    asked.push(...(await app.db.selectFrom('confirmations').select('id').where('agent_id', '=', 'retry-restore-bot').execute()).map((r) => r.id));
    expect(asked).toEqual([first.body.confirmationId]);
    expect(await cards()).toBe(1);

    // A later retry: the same answer; once confirmed, still the same (the caller polls GET /v1/confirmations/{id}).
    expect((await restore('restore-retry-1')).body).toEqual({ ...first.body, replayed: true });
    expect(await click('U0ONCALL1', first.body.confirmationId)).toContain('Restored retry-restore-bot');
    const late = await restore('restore-retry-1');
    expect(late.status).toBe(202);
    expect(late.body).toEqual({ ...first.body, replayed: true });
    expect(await decision('retry-restore-bot')).toBe('allow');
    expect(await app.db.selectFrom('confirmations').select('id').where('agent_id', '=', 'retry-restore-bot').execute()).toHaveLength(1);
    // The question, and its update showing the outcome: nothing more.
    expect(await cards()).toBe(2);
    await waitFor(() => slack.posts('C0INCIDENTS').some((p) => textOf(p.args).includes(first.body.confirmationId)), 5000, 'the confirmation request in Slack');
    expect(slack.posts('C0INCIDENTS').filter((p) => textOf(p.args).includes(first.body.confirmationId))).toHaveLength(1);
    // The key is the token's own: another token's same key is a new request (nothing left to restore now).
    const other = await app.call('POST', '/v1/agents/retry-restore-bot/actions', { action: 'restore', reason: 'all clear' }, { headers: { 'idempotency-key': 'restore-retry-1' }, token: OTHER_TOKEN });
    expect(other.status).toBe(409);
  });

  it('a confirmation asked over the API is cancelled when its incident ends another way, and GET says so', async () => {
    await app.call('PUT', '/v1/agents/ttl-bot', sampleAgent);
    expect((await app.call('POST', '/v1/agents/ttl-bot/actions', { action: 'contain', reason: 'drill', ttl: '1h' })).status).toBe(201);
    await freshEvaluation('ttl-bot', 'ttl-bot-eval-1');
    const asked = await app.call('POST', '/v1/agents/ttl-bot/actions', { action: 'restore', reason: 'all clear' });
    expect(asked.status).toBe(202);
    const id = asked.body.confirmationId as string;

    const action = await app.db.selectFrom('agent_actions').select('id').where('agent_id', '=', 'ttl-bot').where('lifted_at', 'is', null).executeTakeFirstOrThrow();
    await app.db.updateTable('agent_actions').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', action.id).execute();
    expect(await app.agents.liftExpired(action.id, 'ttl-bot')).toBe('lifted');
    const ended = await app.call('GET', `/v1/confirmations/${id}`);
    expect(ended.body).toMatchObject({ status: 'cancelled', decidedBy: 'system:ttl', reason: `incident ${asked.body.incidentId} ended` });

    // Contained again (a new incident): the old button does nothing.
    await app.call('POST', '/v1/agents/ttl-bot/actions', { action: 'contain', reason: 'again' });
    expect(await click('U0ONCALL2', id)).toContain('which has ended');
    expect(await decision('ttl-bot')).toBe('deny');
  });

  it('a restore asked while a decommission holds the agent is refused once it commits: no confirmation, no card', async () => {
    await app.call('PUT', '/v1/agents/retiring-bot', sampleAgent);
    expect((await app.call('POST', '/v1/agents/retiring-bot/actions', { action: 'contain', reason: 'drill' })).status).toBe(201);
    expect((await freshEvaluation('retiring-bot', 'retiring-bot-eval-1')).status).toBe(201);
    await inTransaction(app.db, async (retire) => {
      // A decommission in flight holds the agent's row; the restore's checks before its lock pass.
      await sql`select id from agents where id = 'retiring-bot' for update`.execute(retire);
      const asked = app.call('POST', '/v1/agents/retiring-bot/actions', { action: 'restore', reason: 'all clear' });
      await waitForLockWait(app.db, 'the restore to wait for the agent row');
      await sql`update agents set status = 'decommissioned', decommissioned_at = now(), decommissioned_by = 'api:platform', decommission_reason = 'retired' where id = 'retiring-bot'`.execute(retire);
      await sql`commit`.execute(retire);
      const answer = await asked;
      expect(answer.status).toBe(409);
      expect(answer.body.error.message).toContain('retiring-bot was decommissioned');
    });
    expect(await app.db.selectFrom('confirmations').select('id').where('agent_id', '=', 'retiring-bot').execute()).toEqual([]);
  });

  it('refuses what cannot be restored the same way as before: unknown agent 404, active agent 409; dry runs change nothing', async () => {
    expect((await app.call('POST', '/v1/agents/nobody-bot/actions', { action: 'restore', reason: 'x' })).status).toBe(404);
    await app.call('PUT', '/v1/agents/calm-bot', sampleAgent);
    const active = await app.call('POST', '/v1/agents/calm-bot/actions', { action: 'restore', reason: 'x' });
    expect(active.status).toBe(409);
    expect(active.body.error.message).toContain('nothing to restore');
    expect((await app.call('POST', '/v1/agents/calm-bot/actions', { action: 'contain', reason: 'x' })).status).toBe(201);
    const dry = await app.call('POST', '/v1/agents/calm-bot/actions', { action: 'restore', reason: 'x', dryRun: true });
    expect(dry.status).toBe(200);
    expect(dry.body.dryRun).toBe(true);
    expect(await app.db.selectFrom('confirmations').select('id').where('agent_id', '=', 'calm-bot').execute()).toHaveLength(0);
  });

  it('GET /v1/confirmations/{id}: 400 for a malformed id, 404 for an unknown one, 401 without a token', async () => {
    expect((await app.call('GET', '/v1/confirmations/not-a-uuid')).status).toBe(400);
    const unknown = await app.call('GET', '/v1/confirmations/00000000-0000-4000-8000-000000000000');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
    expect((await app.call('GET', '/v1/confirmations/00000000-0000-4000-8000-000000000000', undefined, { token: null })).status).toBe(401);
  });
});
