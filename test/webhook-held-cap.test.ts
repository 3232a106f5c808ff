import { describe, expect } from 'vitest';
import { sql } from 'kysely';
import { sampleAgent, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import { signedWebhook } from './support/drive.js';
import { HELD_LIMIT, HELD_TTL_MS, InboundEvents } from '../src/webhooks/inbound-events.js';

// Held events (for agents not registered yet) are bounded: a sender holding the webhook secret, or a
// misconfigured one sending for agents that will never exist, cannot fill the database.
const SECRET = 'armalo_inbound_secret_0123456789';
let app: TestApp;

const it = appTest({ env: { ARMALO_WEBHOOK_SECRET: SECRET } });
it.beforeAll(({ app: started }) => {
  app = started;
});

const webhook = (event: unknown) => signedWebhook(app, SECRET, event);
const violation = (id: string, agentId: string) => ({ id, type: 'pact.violated', createdAt: new Date().toISOString(), data: { agentId, pactId: 'no-pii', severity: 'critical' } });
const heldCount = async () => Number((await app.db.selectFrom('held_events').select((eb) => eb.fn.countAll().as('n')).where('applied_at', 'is', null).executeTakeFirstOrThrow()).n);

describe('held webhook events are bounded', () => {
  it('refuses a new event past the limit with 503 and keeps nothing, while a resend of a held one is still held', async () => {
    expect((await webhook(violation('held-first', 'ghost-0'))).status).toBe(202);
    // Fill up to the limit directly (ten thousand signed requests would only slow the test).
    await sql`insert into held_events (id, type, agent_id, event, received_at)
      select 'fill-' || g, 'pact.violated', 'ghost-' || (g % 50), '{}'::jsonb, now() from generate_series(2, ${HELD_LIMIT}) g`.execute(app.db);
    expect(await heldCount()).toBe(HELD_LIMIT);

    const refused = await webhook(violation('held-one-too-many', 'ghost-x'));
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('unavailable');
    expect(refused.body.error.message).toContain(`${HELD_LIMIT} events are already held`);
    expect(await app.db.selectFrom('held_events').select('id').where('id', '=', 'held-one-too-many').executeTakeFirst()).toBeUndefined();
    expect(await heldCount()).toBe(HELD_LIMIT);

    // The sender retrying an event we already hold is answered as before.
    expect((await webhook(violation('held-first', 'ghost-0'))).body.status).toBe('held');
    // Events for registered agents are never held, so they still apply at the limit.
    expect((await app.call('PUT', '/v1/agents/real-bot', sampleAgent)).status).toBe(201);
    expect((await webhook(violation('real-1', 'real-bot'))).body.status).toBe('applied');
  });

  it('drops events held past their time-to-live for agents never registered, keeping the others, and logs it', async () => {
    await app.db.deleteFrom('held_events').execute();
    const old = new Date(Date.now() - HELD_TTL_MS - 60_000);
    await app.db.insertInto('held_events').values([
      { id: 'old-ghost', type: 'pact.violated', agent_id: 'never-bot', event: '{}', received_at: old },
      { id: 'new-ghost', type: 'pact.violated', agent_id: 'never-bot', event: '{}', received_at: new Date() },
    ]).execute();
    const inbound = new InboundEvents({ db: app.db, clock: { now: () => new Date() }, trust: app.trust, logger: app.logger });
    expect(await inbound.dropExpired()).toBe(1);
    const left = (await app.db.selectFrom('held_events').select('id').execute()).map((r) => r.id);
    expect(left).toEqual(['new-ghost']);
    expect(app.logs.lines.some((l) => l.msg === 'held webhook events dropped: their agents were never registered' && (l.agents as string[]).includes('never-bot'))).toBe(true);
    // With room again, a new event is held.
    expect((await webhook(violation('room-again', 'ghost-y'))).body.status).toBe('held');
  });
});
