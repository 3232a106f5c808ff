import { describe, expect, it } from 'vitest';
import type { TrustPacket } from '../src/packets/packet.js';
import { renderPacketMarkdown, md } from '../src/packets/render-markdown.js';
import { renderPacketPdf } from '../src/packets/render-pdf.js';
import { renderScoreChartPng, renderScoreChartSvg } from '../src/packets/score-chart.js';

const DAY = 86_400_000;
const GENERATED = Date.parse('2025-06-01T12:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();

function tierOf(score: number): string {
  return score >= 900 ? 'platinum' : score >= 750 ? 'gold' : score >= 500 ? 'silver' : 'bronze';
}

function fixture(): TrustPacket {
  const points = Array.from({ length: 90 }, (_, i) => {
    const score = Math.round(700 + 60 * Math.sin(i / 10) + i * 0.5);
    return { at: iso(GENERATED - (89 - i) * DAY), score, tier: tierOf(score), source: 'computed' as const };
  });
  points[points.length - 1] = { at: iso(GENERATED), score: 812, tier: 'gold', source: 'computed' };
  const asOf = iso(GENERATED);
  return {
    id: 'pkt_01HZX4T9',
    version: 2,
    generatedAt: asOf,
    requestedBy: 'U123 (ciso@example.com)',
    audience: 'Procurement review',
    workflow: 'loan-underwriting',
    scope: { workflow: 'loan-underwriting', actions: ['loans:*'], missing: false, grants: { inScope: 2, total: 3 }, routingRules: { inScope: 1, total: 2 }, consequenceRules: { inScope: 1, total: 1 } },
    agent: { id: 'agt_uw_1', name: 'underwriting-bot', owner: 'credit-risk-team', riskTier: 'high', status: 'active' },
    summary: {
      asOf,
      score: 812,
      tier: 'gold',
      change30d: 24,
      trend: 'up',
      evidence: 'ageing',
      verdict: 'underwriting-bot FAILED its high-severity pact “PII stays in region” at the latest verification (45 days ago). Its score of 812 (gold) should not be relied on until this is resolved.',
      verdictLevel: 'alert',
      facts: ['FAILED its high-severity pact “PII stays in region” at the latest verification (45 days ago)'],
    },
    answers: { promised: '2 pacts', proofCurrent: '3 items', whenProofWeakens: 'Now active' },
    pacts: {
      asOf,
      items: [
        {
          id: 'pact_fair_lending',
          title: 'Fair lending decisions',
          severity: 'critical',
          clauses: ['No use of protected attributes', 'Adverse-action reasons for *every* denial | always'],
          verification: 'weekly disparate-impact test',
          lastVerified: iso(GENERATED - 3 * DAY),
          lastResult: 'passed',
          ageDays: 3,
          freshness: 'fresh',
          evaluations: 12,
          passRate: 1,
          lastFailure: null,
        },
        {
          id: 'pact_pii',
          title: 'PII stays in region',
          severity: 'high',
          clauses: ['Applicant data never leaves eu-west-1'],
          verification: 'egress log audit',
          lastVerified: iso(GENERATED - 45 * DAY),
          lastResult: 'failed',
          ageDays: 45,
          freshness: 'stale',
          evaluations: 4,
          passRate: 0.75,
          lastFailure: iso(GENERATED - 45 * DAY),
        },
      ],
    },
    evidence: {
      asOf,
      total: 3,
      staleCount: 1,
      staleAfterDays: 30,
      oldest: iso(GENERATED - 45 * DAY),
      newest: iso(GENERATED - 3 * DAY),
      byDimension: [
        { key: 'data-residency', count: 1, passRate: 0, lastFailure: iso(GENERATED - 45 * DAY), oldest: iso(GENERATED - 45 * DAY), newest: iso(GENERATED - 45 * DAY), freshness: 'stale', staleCount: 1 },
        { key: 'fairness', count: 1, passRate: 1, lastFailure: null, oldest: iso(GENERATED - 3 * DAY), newest: iso(GENERATED - 3 * DAY), freshness: 'fresh', staleCount: 0 },
      ],
      byPact: [{ key: 'pact_pii', title: 'PII stays in region', count: 1, passRate: 0, lastFailure: iso(GENERATED - 45 * DAY), oldest: iso(GENERATED - 45 * DAY), newest: iso(GENERATED - 45 * DAY), freshness: 'stale', staleCount: 1 }],
      omitted: 0,
      items: [
        { id: 'ev1', pactId: 'pact_fair_lending', dimension: 'fairness', result: 'pass', observedAt: iso(GENERATED - 3 * DAY), ageDays: 3, source: 'eval-harness', evidenceUrl: 'https://evidence.example.com/ev1', stale: false },
        { id: 'ev2', pactId: 'pact_pii', dimension: 'data-residency', result: 'fail: 2 cross-region calls', observedAt: iso(GENERATED - 45 * DAY), ageDays: 45, source: 'egress-audit', evidenceUrl: null, stale: true },
        { id: 'ev3', pactId: null, dimension: 'latency', result: 'p95 1.2s', observedAt: iso(GENERATED - 10 * DAY), ageDays: 10, source: 'prometheus', evidenceUrl: null, stale: false },
      ],
    },
    scoreHistory: { asOf, days: 90, from: iso(GENERATED - 89 * DAY), points },
    runtimeControls: {
      asOf,
      status: 'active',
      grants: [
        { scope: 'loans:decide', state: 'granted', constraints: { maxAmount: 50000 }, keepInContainment: false },
        { scope: 'loans:read', state: 'granted', constraints: {}, keepInContainment: true },
      ],
      needsApproval: [{ ruleId: 'large-loans', action: 'loans:approve', approvers: ['@credit-lead', '@risk-officer'], quorum: 2 }],
      tightens: [{ ruleId: 'stale-evidence', action: null, condition: 'evidence older than 30d', effect: 'adds ciso as approvers', inForceNow: false }],
      activeActions: [],
    },
    consequences: { asOf, rules: [{ ruleId: 'critical-contain', when: 'a critical pact is violated', effect: 'contain: suspends 1 of 2 grants in this workflow (loans:decide), keeps loans:read', applies: true, conditionHoldsNow: false }] },
    incidents: {
      asOf,
      openCount: 0,
      items: [
        {
          id: 'inc_42',
          openedAt: iso(GENERATED - 20 * DAY),
          closedAt: iso(GENERATED - 20 * DAY + 135 * 60_000),
          durationMinutes: 135,
          steps: [
            { kind: 'contain', actor: 'U999', reason: 'cross-region calls detected', at: iso(GENERATED - 20 * DAY) },
            { kind: 'resolve', actor: 'U999', reason: 'egress rule fixed', at: iso(GENERATED - 20 * DAY + 135 * 60_000) },
          ],
        },
      ],
    },
    approvals: { asOf, days: 30, counts: { approved: 41, denied: 3, expired: 2, cancelled: 1, pending: 4 }, medianMinutesToDecision: 17 },
    auditIntegrity: {
      asOf,
      headSeq: '18234',
      headHash: '9f2c1e0b7a4d3c6e5f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6',
      verified: true,
      entries: 18234,
      firstBroken: null,
    },
  };
}

/** Width and height from a PNG's IHDR chunk, after checking the signature. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  expect(png.toString('latin1', 12, 16)).toBe('IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

async function pdfTextAndImages(pdf: Buffer): Promise<{ text: string; pages: number; images: number }> {
  const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
  const doc = await pdfjs.getDocument({ data: new Uint8Array(pdf), isEvalSupported: false, useSystemFonts: false, verbosity: 0 }).promise;
  let text = '';
  let images = 0;
  for (let n = 1; n <= doc.numPages; n++) {
    const page = await doc.getPage(n);
    const content = await page.getTextContent();
    for (const item of content.items) {
      if ('str' in item) text += item.str + (item.hasEOL ? '\n' : '');
    }
    text += '\n';
    const ops = await page.getOperatorList();
    images += ops.fnArray.filter((fn) => fn === pdfjs.OPS.paintImageXObject).length;
  }
  const pages = doc.numPages;
  await doc.destroy();
  return { text, pages, images };
}

describe('trust packet Markdown', () => {
  const markdown = renderPacketMarkdown(fixture());

  it('has the agent, score, tier, every pact and the stale-evidence warning', () => {
    expect(markdown).toContain('# Trust packet: underwriting-bot');
    expect(markdown).toContain('| 812 | gold |');
    expect(markdown).toContain('### Fair lending decisions');
    expect(markdown).toContain('### PII stays in region');
    expect(markdown).toMatch(/stale evidence/);
    const evidence = markdown.slice(markdown.indexOf('## Evidence'));
    expect(evidence.split('\n').slice(1, 6).join('\n')).toMatch(/⚠️ \*\*Warning: this packet relies on stale evidence/);
    expect(evidence).toContain('| **STALE** |');
    expect(evidence).toContain('45 days');
  });

  it('has every section with its as-of time, durations, approvals and audit head', () => {
    for (const section of ['The three questions', 'Summary', 'Pacts', 'Evidence', 'Score history', 'Runtime controls', 'Consequence rules', 'Incidents', 'Approvals', 'Audit integrity', 'Appendix: evidence items']) {
      expect(markdown).toContain(`## ${section}\n\n_As of 2025-06-01 12:00 UTC_`);
    }
    expect(markdown).toContain('lasted 2 h 15 min');
    expect(markdown).toContain('| 41 | 3 | 2 | 1 | 4 |');
    expect(markdown).toContain('Median time to decision: 17 min.');
    expect(markdown).toContain('`9f2c1e0b7a4d3c6e5f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6`');
    expect(markdown).toContain('verified — the hash chain is intact');
    expect(markdown).toContain('**FAILED** on 2025-04-17 12:00 UTC');
  });

  it('escapes Markdown in user text', () => {
    expect(markdown).toContain('Adverse-action reasons for \\*every\\* denial \\| always');
    expect(md('# [x](javascript:alert(1)) <b>_hi_</b>\nnext')).toBe('\\# \\[x\\](javascript:alert(1)) \\<b\\>\\_hi\\_\\</b\\> next');
    expect(md('- not a list')).toBe('\\- not a list');
    expect(md('1. not a list')).toBe('1\\. not a list');
  });

  it('omits the warning when nothing is stale', () => {
    const p = fixture();
    p.evidence.staleCount = 0;
    p.evidence.items = p.evidence.items.map((e) => ({ ...e, stale: false }));
    expect(renderPacketMarkdown(p)).not.toMatch(/stale evidence/);
  });
});

describe('score chart', () => {
  it('renders a PNG of the requested size', () => {
    const png = renderScoreChartPng(fixture().scoreHistory.points, { width: 640, height: 260 });
    expect(pngSize(png)).toEqual({ width: 640, height: 260 });
    expect(pngSize(renderScoreChartPng(fixture().scoreHistory.points))).toEqual({ width: 800, height: 320 });
  });

  it('shades the tier bands, with custom thresholds', () => {
    const svg = renderScoreChartSvg(fixture().scoreHistory.points, { thresholds: { silver: 400, gold: 700, platinum: 950 } });
    expect(svg).toContain('bronze &lt;400');
    expect(svg).toContain('platinum ≥950');
    expect(svg).toContain('<path d="M');
  });

  it('says so when there is no history or a single point', () => {
    for (const points of [[], [{ at: '2025-06-01T00:00:00Z', score: 640 }]]) {
      expect(renderScoreChartSvg(points)).toContain('no score history');
      expect(pngSize(renderScoreChartPng(points, { width: 400, height: 200 }))).toEqual({ width: 400, height: 200 });
    }
  });
});

describe('trust packet PDF', () => {
  it('contains the agent, score, tier, pacts, stale-evidence warning, a vector chart over 90 days and page numbers', async () => {
    const pdf = await renderPacketPdf(fixture());
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    // Text is set in embedded (subset) fonts, not the 14 standard ones.
    expect(pdf.includes(Buffer.from('/FontFile2'))).toBe(true);

    const { text, pages } = await pdfTextAndImages(pdf);
    const flat = text.replace(/\s+/g, ' ');
    expect(flat).toContain('underwriting-bot');
    expect(flat).toContain('812');
    expect(flat).toContain('gold');
    expect(flat).toContain('Fair lending decisions');
    expect(flat).toContain('PII stays in region');
    expect(flat).toContain('stale evidence');
    expect(flat).toContain(`Page 1 of ${pages}`);
    expect(flat).toContain(`Page ${pages} of ${pages}`);
    // The chart's time axis spreads over the 90 days: seven different dates, first and last.
    const page1 = text.split('Page 1 of')[0]!;
    const dates = new Set(page1.match(/\b2025-\d\d-\d\d\b/g));
    expect(dates.has('2025-03-04')).toBe(true);
    expect(dates.has('2025-06-01')).toBe(true);
    expect(dates.size).toBeGreaterThanOrEqual(7);
  });

  it('is byte-identical for the same packet', async () => {
    const [a, b] = await Promise.all([renderPacketPdf(fixture()), renderPacketPdf(fixture())]);
    expect(a.equals(b)).toBe(true);
  });
});
