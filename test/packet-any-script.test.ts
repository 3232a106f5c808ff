import { describe, expect, it } from 'vitest';
import type { TrustPacket } from '../src/packets/packet.js';
import { renderPacketPdf } from '../src/packets/render-pdf.js';
import { renderPacketMarkdown } from '../src/packets/render-markdown.js';
import { packetChartPng, renderScoreChartPng } from '../src/packets/score-chart.js';
import { fontRuns } from '../src/packets/fonts.js';

/**
 * Any script prints: agent and company names in Polish, Greek and Japanese come out of the PDF as
 * the same text (extracted with the suite's extractor, pdf.js), and Arabic glyphs are drawn from an
 * embedded Arabic font. The chart draws them too.
 */

const DAY = 86_400_000;
const NOW = Date.parse('2026-12-02T12:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

const NAMES = {
  polish: 'Żółty agent płatności z Łodzi',
  greek: 'Ελληνικός πράκτορας πληρωμών',
  japanese: '支払いエージェント東京',
  arabic: 'وكيل المدفوعات',
};

function packet(name: string, audience: string): TrustPacket {
  const asOf = iso(NOW);
  const points = Array.from({ length: 90 }, (_, i) => ({ at: iso(NOW - (89 - i) * DAY), score: 700 + (i % 10), tier: 'silver', source: 'computed' as const }));
  return {
    id: '2f1c7c1e-6d5f-4a57-9a0e-0c7b8f6f5d10',
    version: 2,
    generatedAt: asOf,
    requestedBy: 'U0PROC',
    audience,
    workflow: null,
    scope: null,
    agent: { id: 'intl-bot', name, owner: 'zofia@example.com', riskTier: 'high', status: 'active' },
    summary: { asOf, score: 709, tier: 'silver', change30d: 0, trend: 'flat', evidence: 'fresh', verdict: `${name} scores 709 (silver) on fresh evidence: its pact passed its latest verification, and no incident is open.`, verdictLevel: 'ok', facts: [] },
    answers: { promised: '1 pact', proofCurrent: '1 item', whenProofWeakens: 'Now active' },
    pacts: {
      asOf,
      items: [{ id: 'pii', title: `${NAMES.greek} / ${NAMES.japanese} / ${NAMES.arabic}`, severity: 'critical', clauses: [NAMES.polish], verification: 'weekly', lastVerified: iso(NOW - DAY), lastResult: 'passed', ageDays: 1, freshness: 'fresh', evaluations: 1, passRate: 1, lastFailure: null }],
    },
    evidence: {
      asOf,
      total: 1,
      staleCount: 0,
      staleAfterDays: 30,
      oldest: iso(NOW - DAY),
      newest: iso(NOW - DAY),
      byDimension: [{ key: 'safety', count: 1, passRate: 1, lastFailure: null, oldest: iso(NOW - DAY), newest: iso(NOW - DAY), freshness: 'fresh', staleCount: 0 }],
      byPact: [],
      items: [{ id: 'e1', pactId: 'pii', dimension: 'safety', result: 'passed', observedAt: iso(NOW - DAY), ageDays: 1, source: 'eval', evidenceUrl: null, stale: false }],
      omitted: 0,
    },
    scoreHistory: { asOf, days: 90, from: iso(NOW - 89 * DAY), points },
    runtimeControls: { asOf, status: 'active', grants: [{ scope: 'payments:transfer', state: 'active', constraints: {}, keepInContainment: false }], needsApproval: [], tightens: [], activeActions: [] },
    consequences: { asOf, rules: [] },
    incidents: { asOf, openCount: 0, items: [] },
    approvals: { asOf, days: 90, counts: { approved: 0, denied: 0, expired: 0, cancelled: 0, pending: 0 }, medianMinutesToDecision: null },
    auditIntegrity: { asOf, headSeq: '10', headHash: 'ab'.repeat(32), verified: true, entries: 10, firstBroken: null },
  };
}

async function pdfText(pdf: Buffer): Promise<string> {
  const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
  const doc = await pdfjs.getDocument({ data: new Uint8Array(pdf), isEvalSupported: false, useSystemFonts: false, verbosity: 0 }).promise;
  let text = '';
  for (let i = 1; i <= doc.numPages; i++) {
    const content = await (await doc.getPage(i)).getTextContent();
    text += content.items.map((item) => ('str' in item ? item.str + (item.hasEOL ? '\n' : '') : '')).join('') + '\n';
  }
  await doc.destroy();
  return text;
}

describe('trust packets in any script', () => {
  it('Polish, Greek and Japanese agent and company names are extractable from the PDF; Arabic glyphs are embedded', async () => {
    const cases = [
      { name: NAMES.polish, audience: 'Bank Spółdzielczy w Łańcucie' },
      { name: NAMES.greek, audience: 'Τράπεζα Αθηνών' },
      { name: NAMES.japanese, audience: '株式会社みずほ銀行' },
    ];
    for (const c of cases) {
      const pdf = await renderPacketPdf(packet(c.name, c.audience));
      const text = (await pdfText(pdf)).replace(/\s+/g, ' ');
      expect(text, c.name).toContain(`Trust packet: ${c.name}`);
      expect(text, c.audience).toContain(`for ${c.audience}`);
      expect(text).not.toContain('?????');
      // Embedded, subset fonts (a subset's name has a six-letter tag).
      const latin1 = pdf.toString('latin1');
      expect(latin1).toMatch(/\/BaseFont \/[A-Z]{6}\+NotoSans-Regular/);
      if (c === cases[2]) expect(latin1).toMatch(/\/BaseFont \/[A-Z]{6}\+NotoSansJP-Regular/);
    }
    // The pact title carries Arabic: drawn with the embedded Arabic face, its letters extractable.
    const pdf = await renderPacketPdf(packet(NAMES.polish, 'Fortress Bank'));
    expect(pdf.toString('latin1')).toMatch(/\/BaseFont \/[A-Z]{6}\+NotoNaskhArabic/);
    const text = await pdfText(pdf);
    expect(text).toMatch(/[\u0600-\u06ff\ufb50-\ufdff\ufe70-\ufeff]{3,}/);
  });

  it('each script is set in a face that has its glyphs; spaces and punctuation stay in their run', () => {
    expect(fontRuns('Łódź 東京 مرحبا', 'bold')).toEqual([
      { text: 'Łódź ', face: 'sansBold' },
      { text: '東京 ', face: 'jpBold' },
      { text: 'مرحبا', face: 'arabicBold' },
    ]);
    expect(fontRuns('ASCII only').map((r) => r.face)).toEqual(['sans']);
  });

  it('the Markdown keeps the names as they are', () => {
    const md = renderPacketMarkdown(packet(NAMES.japanese, 'Τράπεζα Αθηνών'));
    expect(md).toContain(`# Trust packet: ${NAMES.japanese}`);
    expect(md).toContain('Τράπεζα Αθηνών');
  });

  it('the chart draws any script in its title (Noto fonts, no system fonts)', () => {
    const p = packet(NAMES.japanese, 'x');
    const png = packetChartPng(p, { width: 640, height: 240 });
    expect(png.readUInt32BE(16)).toBe(640);
    // The same chart with an ASCII title differs only in the title's pixels: the Japanese glyphs were drawn, not dropped.
    const plain = renderScoreChartPng(p.scoreHistory.points, { width: 640, height: 240, title: 'Trust score of , last 90 days', from: p.scoreHistory.from, to: p.scoreHistory.asOf });
    expect(png.equals(plain)).toBe(false);
  });
});
