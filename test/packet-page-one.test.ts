import { writeFileSync } from 'node:fs';
import { describe, expect } from 'vitest';
import { sampleAgent, waitFor, TOKEN, type TestApp } from './support/app.js';
import { appTest } from './support/fixture.js';
import type { FakeSlack } from './support/fake-slack.js';
import { postSigned, slashCommandBody } from './support/slack-requests.js';

/**
 * The situation of issue 16, built from outside: an agent with a critical pact whose latest
 * verification failed, 120 evaluations over 90 days (80 past the 30-day limit), all imported on one
 * day, and one contain/restore incident. Page one of its PDF must show those facts, and the chart
 * must spread over the 90 days.
 */

const POLICY = `
roles:
  procurement: { members: [{ slack: U0PROC }] }
  ciso: { members: [{ slack: U0CISO, email: ciso@example.com }] }
  security-oncall: { members: [{ slack: U0ONCALL1 }] }
permissions:
  packet: [procurement, ciso]
  contain: [security-oncall, ciso]
  restore: [security-oncall, ciso]
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [ciso]
  - id: stale-evidence
    match: { evidenceOlderThan: 30d }
    addApprovers: [ciso]
  - id: mail-review
    match: { action: "mail:*" }
    approvers: [security-oncall]
consequences:
  - id: critical-contain
    when: { pactViolated: critical }
    then: { contain: true }
  - id: crm-narrow
    when: { tierBelow: silver }
    then: { narrow: ["crm:*"] }
workflows:
  agent_underwriting:
    actions: ["payments:*", "crm:read"]
`;

const DAY = 86_400_000;
let app: TestApp;
let slack: FakeSlack;
let n = 0;

const it = appTest({ policy: POLICY, slack: true, appOptions: { relayPollMs: 200 } });
it.beforeAll(async ({ app: started, slack: fakeSlack }) => {
  app = started;
  slack = fakeSlack;
  await app.call('PUT', '/v1/agents/underwriting-bot', sampleAgent);
  await app.call('POST', '/v1/agents/underwriting-bot/pacts', { id: 'no-pii', title: 'Never sends PII outside the company', clauses: ['no SSNs in outbound mail'], severity: 'critical', verification: 'weekly red-team eval' });
  await app.call('POST', '/v1/agents/underwriting-bot/pacts', { id: 'limits', title: 'Stays within payment limits', clauses: ['no transfer above maxAmount'], severity: 'high', verification: 'daily replay' });
  // 120 evaluations over 90 days, imported now (oldest first), one every 18 hours: the 80 oldest are past 30 days.
  const now = Date.now();
  for (let i = 119; i >= 0; i--) {
    const observedAt = new Date(now - (i * 0.75 + 0.1) * DAY).toISOString();
    const dim = ['safety', 'accuracy', 'reliability'][i % 3]!;
    const pactId = dim === 'safety' ? 'no-pii' : dim === 'reliability' ? 'limits' : undefined;
    // The newest safety check (the critical pact's latest verification) failed; a few older ones too.
    const passed = i === 0 ? false : i % 17 !== 5;
    const res = await app.call('POST', '/v1/agents/underwriting-bot/evaluations', { id: `e-${i}`, ...(pactId ? { pactId } : {}), dimension: dim, passed, observedAt, source: 'import' });
    expect(res.status).toBeLessThan(300);
  }
  expect((await app.call('POST', '/v1/agents/underwriting-bot/actions', { action: 'contain', reason: 'suspected PII in outbound mail' })).status).toBe(201);
  expect((await app.call('POST', '/v1/agents/underwriting-bot/actions', { action: 'restore', reason: 'mail filter fixed' })).status).toBe(201);
}, 120_000);

async function build(body: Record<string, unknown>) {
  const res = await app.call('POST', '/v1/trust-packets', body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const id = res.body.id as string;
  await waitFor(async () => (await app.call('GET', `/v1/trust-packets/${id}`)).body.status === 'ready', 15_000, 'the packet to be built');
  return { id, packet: (await app.call('GET', `/v1/trust-packets/${id}`)).body.packet };
}

/** The text of each page of a PDF, with the suite's extractor (pdf.js). */
export async function pdfPages(pdf: Buffer): Promise<string[]> {
  const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
  const doc = await pdfjs.getDocument({ data: new Uint8Array(pdf), isEvalSupported: false, useSystemFonts: false, verbosity: 0 }).promise;
  const pages: string[] = [];
  for (let i = 1; i <= doc.numPages; i++) {
    const content = await (await doc.getPage(i)).getTextContent();
    pages.push(content.items.map((item) => ('str' in item ? item.str + (item.hasEOL ? '\n' : '') : '')).join(''));
  }
  await doc.destroy();
  return pages;
}

async function pdfOf(id: string): Promise<Buffer> {
  const res = await fetch(`${app.url}/v1/trust-packets/${id}?format=pdf`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

const flat = (s: string) => s.replace(/\s+/g, ' ');

describe('a trust packet for the situation of issue 16', () => {
  it('leads the verdict with the failing critical pact and names the stale evidence; never says fresh', async () => {
    const { packet } = await build({ agentId: 'underwriting-bot', audience: 'Fortress Bank' });
    expect(packet.summary.verdictLevel).toBe('alert');
    expect(packet.summary.verdict).toMatch(/^Underwriting bot FAILED its critical pact “Never sends PII outside the company” at the latest verification/);
    expect(packet.summary.verdict).toContain('80 of 120 items are past the 30-day staleness limit');
    expect(packet.summary.verdict).not.toMatch(/fresh/i);
    expect(packet.evidence).toMatchObject({ total: 120, staleCount: 80, omitted: 70 });
    expect(packet.evidence.items).toHaveLength(50);
    expect(packet.evidence.byDimension.map((d: { key: string; count: number }) => [d.key, d.count])).toEqual([
      ['accuracy', 40],
      ['reliability', 40],
      ['safety', 40],
    ]);
    const safety = packet.evidence.byPact.find((p: { key: string }) => p.key === 'no-pii');
    expect(safety).toMatchObject({ title: 'Never sends PII outside the company', count: 40, freshness: 'fresh' });
    expect(safety.passRate).toBeLessThan(1);
    expect(packet.pacts.items.find((p: { id: string }) => p.id === 'no-pii')).toMatchObject({ lastResult: 'failed', evaluations: 40, ageDays: 0 });
  });

  it('draws the score history over the 90 days the evidence covers, not the one day it was imported', async () => {
    const { packet } = await build({ agentId: 'underwriting-bot' });
    const days = new Set(packet.scoreHistory.points.map((p: { at: string }) => p.at.slice(0, 10)));
    expect(days.size).toBe(packet.scoreHistory.points.length);
    expect(days.size).toBeGreaterThanOrEqual(89);
    // The chart ends on the headline, and the 30-day change is not the whole score.
    expect(packet.scoreHistory.points.at(-1).score).toBe(packet.summary.score);
    expect(Math.abs(packet.summary.change30d)).toBeLessThan(200);
  });

  it('page one of the PDF answers the three questions: the failing pact, the stale evidence, the incident, the rules, the score', async () => {
    const { id, packet } = await build({ agentId: 'underwriting-bot', audience: 'Fortress Bank' });
    const pdf = await pdfOf(id);
    // PACKET_PAGE_ONE_PDF=<file> keeps this PDF: docs/packets.md's picture of page one is made from it.
    if (process.env.PACKET_PAGE_ONE_PDF) writeFileSync(process.env.PACKET_PAGE_ONE_PDF, pdf);
    const pages = await pdfPages(pdf);
    expect(pages.length).toBeGreaterThanOrEqual(3);
    const one = flat(pages[0]!);
    const order = ['What did it promise?', 'Is the proof current?', 'What changes when the proof weakens?', 'Score '];
    const at = order.map((s) => one.indexOf(s));
    expect(at.every((i) => i >= 0), `${order.join(' / ')} on page one:\n${one}`).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(one).toContain('FAILED its critical pact');
    expect(one).toMatch(/CRITICAL Never sends PII outside the company: FAILED at the latest verification/);
    expect(one).toContain('80 of 120 (67%) are past the 30-day staleness limit');
    expect(one).toMatch(/Last 90 days: 1 incident \(contain \d{4}-\d\d-\d\d by api:platform, restore after \d+ min\)/);
    expect(one).toMatch(/If a critical pact is violated, then contain: suspends 3 of 4 grants \(crm:write, payments:refund, payments:transfer\), keeps mail:send/);
    expect(one).toContain('Approvals when evidence older than 30d: adds ciso as approvers');
    expect(one).toContain(`Score ${packet.summary.score} (${packet.summary.tier})`);
    // The chart's dates spread over 90 days.
    const dates = new Set(one.match(/\d{4}-\d\d-\d\d/g));
    expect(dates.has(packet.scoreHistory.from.slice(0, 10))).toBe(true);
    expect(dates.has(packet.generatedAt.slice(0, 10))).toBe(true);
    // The raw evidence is in the appendix, capped.
    expect(flat(pages.join(' '))).toContain('… 70 more not shown.');
  });

  it('a workflow scopes the packet to the grants and rules its actions touch, and page one says so', async () => {
    const { id, packet } = await build({ agentId: 'underwriting-bot', workflow: 'agent_underwriting' });
    expect(packet.scope).toEqual({
      workflow: 'agent_underwriting',
      actions: ['payments:*', 'crm:read'],
      missing: false,
      grants: { inScope: 2, total: 4 },
      routingRules: { inScope: 2, total: 3 },
      consequenceRules: { inScope: 2, total: 2 },
    });
    expect(packet.runtimeControls.grants.map((g: { scope: string }) => g.scope)).toEqual(['payments:refund', 'payments:transfer']);
    expect(packet.runtimeControls.needsApproval.map((r: { ruleId: string }) => r.ruleId)).toEqual(['big-payments']);
    // crm:* touches the workflow's crm:read, but none of the agent's grants in it.
    expect(packet.consequences.rules.map((r: { ruleId: string; applies: boolean }) => [r.ruleId, r.applies])).toEqual([
      ['critical-contain', true],
      ['crm-narrow', false],
    ]);
    const one = flat((await pdfPages(await pdfOf(id)))[0]!);
    expect(one).toContain('Scoped to workflow agent_underwriting (payments:*, crm:read): 2 of 4 grants, 2 of 3 routing rules and 2 of 2 consequence rules');
    expect(one).toContain('contain: suspends 2 of 2 grants in this workflow');
  });

  it('an unknown workflow is a clear 400 over REST and a clear error in chat; nothing is built', async () => {
    const before = (await app.db.selectFrom('trust_packets').select('id').execute()).length;
    const res = await app.call('POST', '/v1/trust-packets', { agentId: 'underwriting-bot', workflow: 'loan_origination' });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('unknown workflow \\"loan_origination\\"; the policy names agent_underwriting');
    const body = slashCommandBody({ user_id: 'U0PROC', text: 'packet underwriting-bot for Fortress Bank workflow loan_origination', channel_id: 'C0VENDORS', response_url: slack.responseUrl(`p${++n}`) });
    const reply = JSON.stringify((await postSigned(app.url, body)).body);
    expect(reply).toContain('unknown workflow');
    expect(reply).toContain('agent_underwriting');
    expect((await app.db.selectFrom('trust_packets').select('id').execute()).length).toBe(before);
  });

  it('the chat command with a known workflow builds a scoped packet', async () => {
    const body = slashCommandBody({ user_id: 'U0PROC', text: 'packet underwriting-bot for Fortress Bank workflow agent_underwriting', channel_id: 'C0VENDORS', response_url: slack.responseUrl(`p${++n}`) });
    expect(JSON.stringify((await postSigned(app.url, body)).body)).toContain('Building the trust packet for underwriting-bot (for Fortress Bank)');
    await waitFor(async () => (await app.db.selectFrom('trust_packets').select('id').where('workflow', '=', 'agent_underwriting').where('status', '=', 'ready').where('requested_by', 'like', '%U0PROC%').execute()).length > 0, 15_000, 'the scoped packet');
  });
});
