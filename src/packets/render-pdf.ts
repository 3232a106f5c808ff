import PDFDocument from 'pdfkit';
import type { TrustPacket } from './packet.js';
import { renderScoreChartPng } from './score-chart.js';
import {
  formatAgeDays,
  formatMinutes,
  formatSigned,
  formatTime,
  incidentMinutes,
  scoreHistoryStats,
  staleEvidenceWarning,
} from './render-markdown.js';

/**
 * PDF rendering of a trust packet (same sections as the Markdown), with the score chart embedded
 * as a PNG and "Page n of m" footers. Deterministic: CreationDate and ModDate come from
 * `packet.generatedAt` (pdfkit derives the document /ID from the info dictionary), and nothing
 * else in pdfkit's output depends on the clock, so the same packet yields the same bytes.
 *
 * Text uses the PDF standard fonts (Helvetica), which need no font files but only cover the
 * WinAnsi (Windows-1252) character set: other characters are transliterated or shown as "?".
 */

const FONT = 'Helvetica';
const FONT_BOLD = 'Helvetica-Bold';
const FONT_ITALIC = 'Helvetica-Oblique';
const MONO = 'Courier';
const COLOUR_TEXT = '#212529';
const COLOUR_MUTED = '#6c757d';
const COLOUR_ALERT = '#b02a37';

/** Characters outside Latin-1 that WinAnsi still has (pdfkit maps these for the standard fonts). */
const WIN_ANSI_EXTRA = new Set('€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ');
const REPLACEMENTS: Record<string, string> = { '→': '->', '←': '<-', '≥': '>=', '≤': '<=', '≠': '!=', '⚠': '!', '✓': 'v', '✗': 'x', '−': '-', '\u00a0': ' ' };

/** Text the standard fonts can show: WinAnsi characters kept, a few symbols spelled out, the rest "?". */
export function pdfText(text: string | null | undefined): string {
  if (text === null || text === undefined) return '';
  let out = '';
  for (const ch of String(text).replace(/[\r\n\t]+/g, ' ')) {
    const cp = ch.codePointAt(0) ?? 0;
    if (REPLACEMENTS[ch] !== undefined) out += REPLACEMENTS[ch];
    else if ((cp >= 0x20 && cp < 0x7f) || (cp >= 0xa0 && cp <= 0xff) || WIN_ANSI_EXTRA.has(ch)) out += ch;
    else if (cp >= 0x20) out += '?';
  }
  return out;
}

type Doc = PDFKit.PDFDocument;

function fixedDate(iso: string): Date {
  const ms = Date.parse(iso);
  return new Date(Number.isFinite(ms) ? ms : 0);
}

export async function renderPacketPdf(packet: TrustPacket): Promise<Buffer> {
  const created = fixedDate(packet.generatedAt);
  const doc = new PDFDocument({
    size: 'A4',
    margins: { top: 56, bottom: 64, left: 56, right: 56 },
    bufferPages: true,
    compress: true,
    info: {
      Title: pdfText(`Trust packet: ${packet.agent.name}`),
      Author: 'Armalo',
      Subject: pdfText(`Trust packet ${packet.id}`),
      Creator: 'Armalo chat-ops',
      Producer: 'Armalo chat-ops (PDFKit)',
      CreationDate: created,
      ModDate: created,
    },
  });

  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('data', (c: Buffer) => chunks.push(c));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });

  writeBody(doc, packet);
  addPageNumbers(doc, packet);
  doc.end();
  return done;
}

function contentWidth(doc: Doc): number {
  return doc.page.width - doc.page.margins.left - doc.page.margins.right;
}

function ensureSpace(doc: Doc, height: number): void {
  if (doc.y + height > doc.page.height - doc.page.margins.bottom) doc.addPage();
}

function heading(doc: Doc, text: string, asOf?: string): void {
  ensureSpace(doc, 60);
  doc.moveDown(0.6);
  doc.font(FONT_BOLD).fontSize(15).fillColor(COLOUR_TEXT).text(pdfText(text), doc.page.margins.left);
  if (asOf) doc.font(FONT_ITALIC).fontSize(9).fillColor(COLOUR_MUTED).text(pdfText(`As of ${formatTime(asOf)}`));
  doc.moveDown(0.3);
  doc.font(FONT).fontSize(10).fillColor(COLOUR_TEXT);
}

function subheading(doc: Doc, text: string): void {
  ensureSpace(doc, 36);
  doc.moveDown(0.3);
  doc.font(FONT_BOLD).fontSize(11.5).fillColor(COLOUR_TEXT).text(pdfText(text), doc.page.margins.left);
  doc.font(FONT).fontSize(10);
}

function para(doc: Doc, text: string, opts: { colour?: string; font?: string; size?: number } = {}): void {
  doc.font(opts.font ?? FONT).fontSize(opts.size ?? 10).fillColor(opts.colour ?? COLOUR_TEXT)
    .text(pdfText(text), doc.page.margins.left, undefined, { width: contentWidth(doc) });
  doc.font(FONT).fontSize(10).fillColor(COLOUR_TEXT);
}

/** "Label: value" with a bold label. */
function field(doc: Doc, label: string, value: string, valueColour = COLOUR_TEXT): void {
  doc.font(FONT_BOLD).fontSize(10).fillColor(COLOUR_TEXT)
    .text(`${pdfText(label)}: `, doc.page.margins.left, undefined, { continued: true, width: contentWidth(doc) });
  doc.font(FONT).fillColor(valueColour).text(pdfText(value));
  doc.fillColor(COLOUR_TEXT);
}

function bullet(doc: Doc, text: string, indent = 0, colour = COLOUR_TEXT): void {
  const x = doc.page.margins.left + 10 + indent;
  doc.font(FONT).fontSize(10).fillColor(colour).text(`•  ${pdfText(text)}`, x, undefined, { width: contentWidth(doc) - 10 - indent });
  doc.fillColor(COLOUR_TEXT);
}

/** A boxed, red warning line. */
function warningBox(doc: Doc, text: string): void {
  const width = contentWidth(doc);
  const body = pdfText(text);
  doc.font(FONT_BOLD).fontSize(10.5);
  const h = doc.heightOfString(body, { width: width - 20 }) + 14;
  ensureSpace(doc, h + 6);
  const top = doc.y;
  doc.save().lineWidth(1.2).rect(doc.page.margins.left, top, width, h).fillAndStroke('#f8d7da', COLOUR_ALERT).restore();
  doc.fillColor(COLOUR_ALERT).text(body, doc.page.margins.left + 10, top + 7, { width: width - 20 });
  doc.x = doc.page.margins.left;
  doc.y = top + h + 6;
  doc.font(FONT).fontSize(10).fillColor(COLOUR_TEXT);
}

function writeBody(doc: Doc, packet: TrustPacket): void {
  const { agent, summary } = packet;

  doc.font(FONT_BOLD).fontSize(20).fillColor(COLOUR_TEXT).text(pdfText(`Trust packet: ${agent.name}`));
  doc.moveDown(0.3);
  field(doc, 'Agent', `${agent.name} (${agent.id}), owner ${agent.owner}`);
  field(doc, 'Risk tier', `${agent.riskTier}; status ${agent.status}`);
  field(doc, 'Packet', `${packet.id} (version ${packet.version}), generated ${formatTime(packet.generatedAt)} for ${packet.requestedBy}`);
  if (packet.audience) field(doc, 'Audience', packet.audience);
  if (packet.workflow) field(doc, 'Workflow', packet.workflow);

  // Summary
  heading(doc, 'Summary', summary.asOf);
  para(doc, summary.verdict, { font: FONT_BOLD, size: 11 });
  doc.moveDown(0.3);
  field(doc, 'Score', summary.score === null ? 'no score' : String(summary.score));
  field(doc, 'Tier', summary.tier ?? 'none');
  field(doc, '30-day change', `${formatSigned(summary.change30d)} (trend ${summary.trend})`);
  field(doc, 'Evidence', summary.evidence === 'stale' ? 'STALE' : summary.evidence, summary.evidence === 'stale' ? COLOUR_ALERT : COLOUR_TEXT);

  // Pacts
  heading(doc, 'Pacts', packet.pacts.asOf);
  if (packet.pacts.items.length === 0) para(doc, 'No pacts are recorded for this agent.');
  for (const pact of packet.pacts.items) {
    subheading(doc, pact.title);
    field(doc, 'Pact', `${pact.id}; severity ${pact.severity}`);
    field(doc, 'Verification', pact.verification);
    const result = pact.lastResult === null ? 'never verified' : pact.lastResult === 'failed' ? 'FAILED' : 'passed';
    const when = pact.lastVerified ? ` on ${formatTime(pact.lastVerified)}` : '';
    field(doc, 'Latest verification', `${result}${when} (evidence ${pact.freshness === 'stale' ? 'STALE' : pact.freshness})`,
      pact.lastResult === 'failed' || pact.freshness === 'stale' ? COLOUR_ALERT : COLOUR_TEXT);
    for (const clause of pact.clauses) bullet(doc, clause, 6);
  }

  // Evidence
  heading(doc, 'Evidence', packet.evidence.asOf);
  const warning = staleEvidenceWarning(packet);
  if (warning) warningBox(doc, warning);
  if (packet.evidence.items.length === 0) para(doc, 'No evidence is recorded for this agent.');
  for (const e of packet.evidence.items) {
    ensureSpace(doc, 40);
    const flag = e.stale ? 'STALE  ' : '';
    doc.font(FONT_BOLD).fontSize(10).fillColor(e.stale ? COLOUR_ALERT : COLOUR_TEXT)
      .text(pdfText(`${flag}${e.dimension}: ${e.result}`), doc.page.margins.left, undefined, { width: contentWidth(doc) });
    const pact = e.pactId ? `, pact ${e.pactId}` : '';
    const url = e.evidenceUrl ? `, ${e.evidenceUrl}` : '';
    para(doc, `Observed ${formatTime(e.observedAt)} (${formatAgeDays(e.ageDays)} old), source ${e.source}${pact}${url}`, { colour: COLOUR_MUTED, size: 9 });
    doc.moveDown(0.2);
  }

  // Score history: keep the heading, the summary line and the chart on one page.
  const chartWidth = contentWidth(doc);
  const chartHeight = chartWidth * (320 / 800);
  ensureSpace(doc, chartHeight + 90);
  heading(doc, 'Score history', packet.scoreHistory.asOf);
  const hist = scoreHistoryStats(packet);
  if (hist.count === 0 || !hist.first || !hist.last) para(doc, `No score history in the last ${packet.scoreHistory.days} days.`);
  else if (hist.count === 1) para(doc, `One score in the last ${packet.scoreHistory.days} days: ${hist.first.score} on ${formatTime(hist.first.at)}.`);
  else para(doc, `${hist.count} scores over the last ${packet.scoreHistory.days} days: ${hist.first.score} on ${formatTime(hist.first.at)} -> ${hist.last.score} on ${formatTime(hist.last.at)}; low ${hist.min}, high ${hist.max}.`);
  ensureSpace(doc, chartHeight + 10);
  const png = renderScoreChartPng(packet.scoreHistory.points, { width: 800, height: 320, title: `Trust score, last ${packet.scoreHistory.days} days` });
  const top = doc.y + 4;
  doc.image(png, doc.page.margins.left, top, { width: chartWidth, height: chartHeight });
  doc.x = doc.page.margins.left;
  doc.y = top + chartHeight + 6;

  // Runtime controls
  const rc = packet.runtimeControls;
  heading(doc, 'Runtime controls', rc.asOf);
  field(doc, 'Status', rc.status);
  subheading(doc, 'Grants');
  if (rc.grants.length === 0) para(doc, 'No grants.');
  for (const g of rc.grants) {
    const constraints = Object.keys(g.constraints).length === 0 ? 'no constraints' : `constraints ${JSON.stringify(g.constraints)}`;
    bullet(doc, `${g.scope}: ${g.state}; ${constraints}${g.keepInContainment ? '; kept in containment' : ''}`);
  }
  subheading(doc, 'Actions that need approval');
  if (rc.needsApproval.length === 0) para(doc, 'None.');
  for (const r of rc.needsApproval) {
    bullet(doc, `${r.ruleId}: ${r.action ?? 'any action'}; quorum ${r.quorum} of ${r.approvers.length ? r.approvers.join(', ') : 'no approvers listed'}`);
  }
  subheading(doc, 'Active containment actions');
  if (rc.activeActions.length === 0) para(doc, 'None.');
  for (const a of rc.activeActions) {
    bullet(doc, `${a.kind} by ${a.actor} since ${formatTime(a.since)}${a.until ? ` until ${formatTime(a.until)}` : ' (no end set)'}: ${a.reason}`);
  }

  // Incidents
  heading(doc, 'Incidents', packet.incidents.asOf);
  if (packet.incidents.items.length === 0) para(doc, 'No incidents.');
  for (const inc of packet.incidents.items) {
    const minutes = incidentMinutes(inc, packet.incidents.asOf);
    subheading(doc, `Incident ${inc.id}`);
    para(doc, `Opened ${formatTime(inc.openedAt)}; ${inc.closedAt ? `closed ${formatTime(inc.closedAt)}, lasted ${formatMinutes(minutes)}` : `still open, ${formatMinutes(minutes)} so far`}.`,
      inc.closedAt ? {} : { colour: COLOUR_ALERT });
    for (const s of inc.steps) bullet(doc, `${formatTime(s.at)} - ${s.kind}${s.breakGlass ? ' (BREAK-GLASS: no second person)' : ''} by ${s.actor}: ${s.reason}`, 6);
  }

  // Approvals
  const ap = packet.approvals;
  heading(doc, 'Approvals', ap.asOf);
  para(doc, `Decisions in the last ${ap.days} days:`);
  field(doc, 'Approved', String(ap.counts.approved));
  field(doc, 'Denied', String(ap.counts.denied));
  field(doc, 'Expired', String(ap.counts.expired));
  field(doc, 'Cancelled', String(ap.counts.cancelled));
  field(doc, 'Pending', String(ap.counts.pending));
  field(doc, 'Median time to decision', ap.medianMinutesToDecision === null ? 'no decisions' : formatMinutes(ap.medianMinutesToDecision));

  // Audit integrity
  const au = packet.auditIntegrity;
  heading(doc, 'Audit integrity', au.asOf);
  field(doc, 'Verification', au.verified ? 'verified - the hash chain is intact' : 'FAILED - the hash chain is broken', au.verified ? COLOUR_TEXT : COLOUR_ALERT);
  field(doc, 'Entries checked', String(au.entries));
  field(doc, 'Head sequence', au.headSeq);
  doc.font(FONT_BOLD).fontSize(10).text('Head hash: ', doc.page.margins.left, undefined, { width: contentWidth(doc) });
  doc.font(MONO).fontSize(8.5).text(pdfText(au.headHash), { width: contentWidth(doc) });
  doc.font(FONT).fontSize(10);
  if (au.firstBroken) field(doc, 'First broken entry', `sequence ${au.firstBroken.seq}: ${au.firstBroken.problem}`, COLOUR_ALERT);
}

function addPageNumbers(doc: Doc, packet: TrustPacket): void {
  const range = doc.bufferedPageRange();
  const footer = pdfText(`Trust packet ${packet.id} - ${packet.agent.name} - generated ${formatTime(packet.generatedAt)}`);
  for (let i = range.start; i < range.start + range.count; i++) {
    doc.switchToPage(i);
    // Writing inside the bottom margin would make pdfkit add a page; lift the margin while we draw.
    const bottom = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    const y = doc.page.height - 40;
    const width = contentWidth(doc);
    doc.font(FONT).fontSize(8).fillColor(COLOUR_MUTED);
    doc.text(footer, doc.page.margins.left, y, { width: width - 80, lineBreak: false, ellipsis: true });
    doc.text(`Page ${i - range.start + 1} of ${range.count}`, doc.page.margins.left, y, { width, align: 'right', lineBreak: false });
    doc.page.margins.bottom = bottom;
  }
}
