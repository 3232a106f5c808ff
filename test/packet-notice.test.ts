import { describe, expect, it } from 'vitest';
import type { TrustPacket } from '../src/packets/packet.js';
import { shortAnswers } from '../src/packets/build-packet.js';
import { packetNotice } from '../src/notices/packet.notice.js';
import { renderSlack } from '../src/slack/render.js';
import { renderTeams } from '../src/teams/render.js';

/**
 * The chat summary of a packet (Slack blocks, Teams card) carries the verdict sentence and page
 * one's three answers, each in one line.
 */

const asOf = '2026-12-02T12:00:00.000Z';
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
const NOW = Date.parse(asOf);

function packet(): TrustPacket {
  const p: TrustPacket = {
    id: '5b3c2a10-0000-4000-8000-000000000001',
    version: 2,
    generatedAt: asOf,
    requestedBy: 'U0PROC',
    audience: 'Fortress Bank',
    workflow: 'agent_underwriting',
    scope: { workflow: 'agent_underwriting', actions: ['payments:*', 'crm:read'], missing: false, grants: { inScope: 2, total: 4 }, routingRules: { inScope: 2, total: 3 }, consequenceRules: { inScope: 1, total: 2 } },
    agent: { id: 'underwriting-bot', name: 'Underwriting bot', owner: 'ana@example.com', riskTier: 'high', status: 'active' },
    summary: {
      asOf,
      score: 933,
      tier: 'platinum',
      change30d: -17,
      trend: 'down',
      evidence: 'fresh',
      verdict: 'Underwriting bot FAILED its critical pact “Never sends PII outside the company” at the latest verification (today); and has stale evidence: 80 of 120 items are past the 30-day staleness limit (every dimension also has newer evidence). Its score of 933 (platinum) should not be relied on until this is resolved.',
      verdictLevel: 'alert',
      facts: [],
    },
    answers: { promised: '', proofCurrent: '', whenProofWeakens: '' },
    pacts: {
      asOf,
      items: [
        { id: 'no-pii', title: 'Never sends PII outside the company', severity: 'critical', clauses: [], verification: 'weekly', lastVerified: asOf, lastResult: 'failed', ageDays: 0, freshness: 'fresh', evaluations: 40, passRate: 0.925, lastFailure: asOf },
        { id: 'limits', title: 'Stays within payment limits', severity: 'high', clauses: [], verification: 'daily', lastVerified: iso(NOW - DAY), lastResult: 'passed', ageDays: 1, freshness: 'fresh', evaluations: 40, passRate: 0.925, lastFailure: null },
      ],
    },
    evidence: {
      asOf,
      total: 120,
      staleCount: 80,
      staleAfterDays: 30,
      oldest: iso(NOW - 89 * DAY),
      newest: asOf,
      byDimension: [{ key: 'safety', count: 40, passRate: 0.925, lastFailure: asOf, oldest: iso(NOW - 89 * DAY), newest: asOf, freshness: 'fresh', staleCount: 27 }],
      byPact: [],
      items: [],
      omitted: 120,
    },
    scoreHistory: { asOf, days: 90, from: iso(NOW - 89 * DAY), points: [] },
    runtimeControls: {
      asOf,
      status: 'active',
      grants: [
        { scope: 'payments:refund', state: 'active', constraints: {}, keepInContainment: false },
        { scope: 'payments:transfer', state: 'active', constraints: {}, keepInContainment: false },
      ],
      needsApproval: [],
      tightens: [{ ruleId: 'stale-evidence', action: null, condition: 'evidence older than 30d', effect: 'adds ciso as approvers', inForceNow: false }],
      activeActions: [],
    },
    consequences: { asOf, rules: [{ ruleId: 'critical-contain', when: 'a critical pact is violated', effect: 'contain: suspends 2 of 2 grants in this workflow', applies: true, conditionHoldsNow: true }] },
    incidents: { asOf, openCount: 0, items: [] },
    approvals: { asOf, days: 90, counts: { approved: 0, denied: 0, expired: 0, cancelled: 0, pending: 0 }, medianMinutesToDecision: null },
    auditIntegrity: { asOf, headSeq: '200', headHash: 'cd'.repeat(32), verified: true, entries: 200, firstBroken: null },
  };
  p.answers = shortAnswers(p);
  return p;
}

describe('the chat summary of a trust packet', () => {
  const p = packet();

  it('answers the three questions in one line each, led by the worst', () => {
    expect(p.answers.promised).toBe('2 pacts: critical “Never sends PII outside the company”: FAILED today; high “Stays within payment limits”: passed 1 d ago.');
    expect(p.answers.proofCurrent).toBe('120 items from 2026-09-04 to 2026-12-02 (newest today); 80 past the 30-day window; every dimension has evidence from the last 30 days.');
    expect(p.answers.whenProofWeakens).toBe('Now active, 2 of 2 grants in force, no open incident. If a critical pact is violated → contain (condition holds now); if evidence older than 30d → adds ciso as approvers.');
  });

  it('Slack and Teams carry the verdict sentence and the three answers', () => {
    const notice = packetNotice(p, { packetId: p.id, contentHash: 'ab'.repeat(32), pdf: 'attached' });
    const slack = JSON.stringify(renderSlack(notice).blocks);
    const teams = JSON.stringify(renderTeams(notice));
    for (const [platform, text] of [['slack', slack], ['teams', teams]] as const) {
      expect(text, platform).toContain('Underwriting bot FAILED its critical pact');
      expect(text, platform).toContain('80 of 120 items are past the 30-day staleness limit');
      for (const answer of ['FAILED today', '80 past the 30-day window', 'If a critical pact is violated → contain']) expect(text, `${platform}: ${answer}`).toContain(answer);
      expect(text, platform).toContain('Scoped to workflow');
      // Never "fresh" beside a count of stale items without saying what is fresh.
      expect(text, platform).not.toMatch(/"fresh ·/);
    }
  });
});
