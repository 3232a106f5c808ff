import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { sampleAgent, TOKEN, type TestApp } from './support/app.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { appTest } from './support/fixture.js';
import { renderOpenApiFile } from '../src/api/openapi.js';
import { createDb } from '../src/db/database.js';
import { NO_MIGRATIONS } from 'kysely';
import { createMigrator } from '../src/db/migrator.js';

/** The newest migration: migrating one step down leaves exactly it pending. */
const LATEST_MIGRATION = readdirSync(new URL('../migrations/', import.meta.url)).filter((f) => /^\d{4}_.*\.ts$/.test(f)).sort().at(-1)!.replace(/\.ts$/, '');

const it = appTest();
let app: TestApp;
let database: TestDatabase;

it.beforeAll(({ app: started, database: fixtureDatabase }) => {
  app = started;
  database = fixtureDatabase;
});

describe('health, readiness, metrics and the API document', () => {
  it('healthz and readyz answer without a token and say what they checked', async () => {
    expect((await app.call('GET', '/healthz', undefined, { token: null })).body).toEqual({ status: 'ok' });
    const ready = await app.call('GET', '/readyz', undefined, { token: null });
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({
      status: 'ready',
      role: 'all',
      policyHash: expect.stringMatching(/^[0-9a-f]{64}$/),
      checks: { postgres: 'ok', redis: 'ok', migrations: 'ok', permissionView: 'ok' },
    });
  });

  it('readyz reports pending migrations as not ready', async () => {
    const db = createDb(database.url, { max: 1 });
    try {
      await createMigrator(db).migrateDown();
      // The tables are gone, so the schema is behind: the replica must not take traffic.
      const res = await app.call('GET', '/readyz');
      expect(res.status).toBe(503);
      expect(res.body.checks.migrations).toContain(`pending migrations: ${LATEST_MIGRATION}`);
    } finally {
      await createMigrator(db).migrateToLatest();
      await db.destroy();
    }
    expect((await app.call('GET', '/readyz')).status).toBe(200);
  });

  it('exposes request counts and latencies, decisions by outcome, queue depths and the outbox', async () => {
    await app.call('PUT', '/v1/agents/metrics-bot', sampleAgent);
    await app.call('POST', '/v1/decisions', { agentId: 'metrics-bot', action: 'crm:write' });
    await app.call('POST', '/v1/decisions', { agentId: 'metrics-bot', action: 'db:drop' });
    await app.call('POST', '/v1/decisions', { agentId: 'metrics-bot', action: 'db:drop' });
    const res = await app.call('GET', '/metrics', undefined, { token: null });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = res.body as string;
    expect(text).toMatch(/armalo_decisions_total\{decision="allow"\} 1\b/);
    expect(text).toMatch(/armalo_decisions_total\{decision="deny"\} 2\b/);
    expect(text).toMatch(/armalo_http_requests_total\{method="POST",route="\/v1\/decisions",status="200"\} 3\b/);
    expect(text).toMatch(/armalo_http_request_duration_seconds_bucket\{le="0.005",method="POST",route="\/v1\/decisions"\}/);
    expect(text).toMatch(/armalo_queue_jobs\{queue="events",state="waiting"\}/);
    expect(text).toMatch(/armalo_outbox_pending \d+/);
    expect(text).toMatch(/armalo_permission_view_fresh 1/);
    expect(text).not.toContain(TOKEN);
  });

  it('serves the OpenAPI document, identical to the checked-in docs/openapi.json', async () => {
    const res = await app.call('GET', '/v1/openapi.json', undefined, { token: null });
    expect(res.status).toBe(200);
    const checkedIn = readFileSync(new URL('../docs/openapi.json', import.meta.url), 'utf8');
    expect(checkedIn).toBe(renderOpenApiFile());
    expect(res.body).toEqual(JSON.parse(checkedIn));
    expect(Object.keys(res.body.paths)).toEqual(
      expect.arrayContaining(['/v1/agents/{agentId}', '/v1/agents/{agentId}/actions', '/v1/decisions', '/v1/audit', '/v1/audit/verify']),
    );
    expect(res.body.components.schemas.ActionInput.properties.action.enum).toEqual(['narrow', 'contain', 'revoke', 'restore']);
  });
});

describe('migrations', () => {
  it('go up, down to nothing, and up again', async () => {
    const fresh = await createTestDatabase({ migrate: false });
    const db = createDb(fresh.url, { max: 1 });
    try {
      const tables = async () =>
        (await db.introspection.getTables()).map((t) => t.name).filter((n) => !n.startsWith('kysely_')).sort();
      expect(await tables()).toEqual([]);
      expect((await createMigrator(db).migrateToLatest()).error).toBeUndefined();
      expect(await tables()).toEqual(['agent_actions', 'agents', 'approval_decisions', 'approval_requests', 'audit_checkpoints', 'audit_head', 'audit_log', 'chat_identities', 'chat_leases', 'chat_messages', 'confirmations', 'console_login_tokens', 'console_sessions', 'evaluations', 'event_deliveries', 'fleet_confirmations', 'fleet_incidents', 'grants', 'held_events', 'idempotent_answers', 'inbound_events', 'incidents', 'outbox', 'pacts', 'policy_rejections', 'policy_versions', 'slack_requests', 'subscriptions', 'teams_conversations', 'trust_packets', 'trust_scores']);
      expect((await createMigrator(db).migrateTo(NO_MIGRATIONS)).error).toBeUndefined();
      expect(await tables()).toEqual([]);
      expect((await createMigrator(db).migrateToLatest()).error).toBeUndefined();
      expect(await tables()).toHaveLength(31);
    } finally {
      await db.destroy();
      await fresh.drop();
    }
  });
});
