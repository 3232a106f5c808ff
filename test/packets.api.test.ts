import { sql } from 'kysely';
import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, TOKEN, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';

let app: TestApp;
const day = 86_400_000;

const it = appTest({ appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started }) => {
  app = started;
  await app.call('PUT', '/v1/agents/underwriting-bot', sampleAgent);
  await app.call('POST', '/v1/agents/underwriting-bot/pacts', { id: 'no-pii', title: 'Never sends PII outside the company', clauses: ['no SSNs in outbound mail'], severity: 'critical', verification: 'weekly red-team eval' });
  await app.call('POST', '/v1/agents/underwriting-bot/pacts', { id: 'limits', title: 'Stays within payment limits', clauses: ['no transfer above maxAmount'], severity: 'high', verification: 'daily replay' });
  const at = (d: number) => new Date(Date.now() - d * day).toISOString();
  // Seeded evidence of known ages: one stale (45 days), the rest fresh.
  const evals = [
    { id: 'e-old', pactId: 'limits', dimension: 'accuracy', passed: true, observedAt: at(45), source: 'replay' },
    { id: 'e-1', pactId: 'no-pii', dimension: 'safety', passed: true, observedAt: at(3), source: 'redteam' },
    { id: 'e-2', pactId: 'no-pii', dimension: 'safety', passed: false, observedAt: at(2), source: 'redteam', evidenceUrl: 'https://evals.example.com/2' },
    { id: 'e-3', dimension: 'accuracy', score: 0.9, observedAt: at(1), source: 'benchmark' },
  ];
  for (const e of evals) await app.call('POST', '/v1/agents/underwriting-bot/evaluations', e);
  await app.call('POST', '/v1/agents/underwriting-bot/actions', { action: 'contain', reason: 'incident drill' });
  await app.call('POST', '/v1/agents/underwriting-bot/actions', { action: 'restore', reason: 'drill over' });
});

async function requestPacket() {
  const res = await app.call('POST', '/v1/trust-packets', { agentId: 'underwriting-bot', audience: 'Fortress Bank' });
  expect(res.status).toBe(202);
  expect(res.body.status).toBe('building');
  const id = res.body.id as string;
  await waitFor(async () => (await app.call('GET', `/v1/trust-packets/${id}`)).body.status === 'ready', 10_000, 'the packet to be built');
  return { id, packet: (await app.call('GET', `/v1/trust-packets/${id}`)).body.packet };
}

describe('trust packets', () => {
  it('are built by a job with exactly the expected values, stale evidence flagged', async () => {
    const { packet } = await requestPacket();
    expect(packet.agent).toMatchObject({ id: 'underwriting-bot', name: 'Underwriting bot', owner: 'ana@example.com', riskTier: 'high', status: 'active' });
    expect(packet.audience).toBe('Fortress Bank');
    expect(packet.requestedBy).toBe('api:platform');
    // accuracy (1 + 0.9) / 2 = 0.95, safety 0.5 → 0.725 → 725 silver
    expect(packet.summary).toMatchObject({ score: 725, tier: 'silver', evidence: 'fresh' });
    expect(packet.pacts.items.map((p: any) => [p.id, p.lastResult, p.freshness])).toEqual([
      ['limits', 'passed', 'stale'],
      ['no-pii', 'failed', 'fresh'],
    ]);
    expect(packet.evidence.staleCount).toBe(1);
    expect(packet.evidence.items.find((e: any) => e.id === 'e-old')).toMatchObject({ stale: true, ageDays: 45 });
    expect(packet.scoreHistory.points.length).toBeGreaterThanOrEqual(3);
    expect(packet.incidents.items).toHaveLength(1);
    expect(packet.incidents.items[0].steps.map((s: any) => s.kind)).toEqual(['contain', 'restore']);
    expect(packet.auditIntegrity).toMatchObject({ verified: true });
    expect(packet.runtimeControls.grants.map((g: any) => g.scope)).toContain('payments:transfer');
    for (const section of ['summary', 'pacts', 'evidence', 'scoreHistory', 'runtimeControls', 'incidents', 'approvals', 'auditIntegrity']) {
      expect(packet[section].asOf, section).toBe(packet.generatedAt);
    }
  });

  it('renders as Markdown and PDF over REST', async () => {
    const { id } = await requestPacket();
    const md = await app.call('GET', `/v1/trust-packets/${id}?format=markdown`);
    expect(md.status).toBe(200);
    expect(md.headers.get('content-type')).toContain('text/markdown');
    expect(md.body).toContain('Never sends PII outside the company');
    expect(md.body).toContain('stale evidence');
    const pdf = await fetch(`${app.url}/v1/trust-packets/${id}?format=pdf`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(pdf.status).toBe(200);
    expect(pdf.headers.get('content-type')).toBe('application/pdf');
    expect(Buffer.from(await pdf.arrayBuffer()).subarray(0, 5).toString()).toBe('%PDF-');
    expect((await app.call('GET', `/v1/trust-packets/${id}?format=docx`)).status).toBe(400);
  });

  it('verify reports intact for an untouched packet and tampered after its stored content is altered', async () => {
    const { id } = await requestPacket();
    const ok = await app.call('GET', `/v1/trust-packets/${id}/verify`);
    expect(ok.body).toMatchObject({ intact: true, evidenceAtBuild: 'fresh', evidenceNow: 'fresh' });
    expect(ok.body.storedHash).toBe(ok.body.computedHash);
    await sql`update trust_packets set content = jsonb_set(content, '{summary,score}', '999') where id = ${id}`.execute(app.db);
    const tampered = await app.call('GET', `/v1/trust-packets/${id}/verify`);
    expect(tampered.body.intact).toBe(false);
    expect(tampered.body.computedHash).not.toBe(tampered.body.storedHash);
  });

  it('refuses an unknown agent and bad input, building nothing', async () => {
    expect((await app.call('POST', '/v1/trust-packets', { agentId: 'ghost-bot' })).status).toBe(404);
    expect((await app.call('POST', '/v1/trust-packets', { agentId: 'underwriting-bot', extra: 1 })).status).toBe(400);
    expect((await app.call('GET', '/v1/trust-packets/not-a-uuid')).status).toBe(400);
    expect((await app.call('GET', '/v1/trust-packets/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    const rows = await app.db.selectFrom('trust_packets').select('agent_id').execute();
    expect(rows.every((r) => r.agent_id === 'underwriting-bot')).toBe(true);
  });
});
