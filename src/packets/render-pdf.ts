import PDFDocument from 'pdfkit';
import type { TrustPacket } from './packet.js';
import { DEFAULT_TIER_THRESHOLDS, SCORE_MAX } from './score-chart.js';
import { face, fontRuns, type Face, type Style } from './fonts.js';
import { day, pageOne, pct, type Line } from './page-one.js';
import { formatAgeDays, formatMinutes, formatSigned, formatTime, incidentMinutes, scoreHistoryStats, staleEvidenceWarning } from './render-markdown.js';

/**
 * PDF rendering of a trust packet. Page one answers the three questions (what it promised, whether
 * the proof is current, what changes when the proof weakens) under the verdict, then the score and
 * a small 90-day chart; the pages after it hold the detail, and an appendix the most recent
 * evidence items.
 *
 * Any script prints: text is set in the Noto fonts of fonts.ts (Latin, Greek, Cyrillic, Japanese,
 * Arabic), embedded as subsets, so the text is also extractable. Deterministic: CreationDate and
 * ModDate come from `packet.generatedAt`, and nothing else in the output depends on the clock, so
 * the same packet yields the same bytes.
 */

const COLOUR_TEXT = '#212529';
const COLOUR_MUTED = '#6c757d';
const COLOUR_ALERT = '#b02a37';
const BOX = { alert: { fill: '#f8d7da', stroke: '#b02a37', text: '#842029' }, caution: { fill: '#fff3cd', stroke: '#997404', text: '#664d03' }, ok: { fill: '#d1e7dd', stroke: '#0f5132', text: '#0f5132' } } as const;

/** Text as one line: line breaks and tabs become spaces, other control characters go. */
export function pdfText(text: string | null | undefined): string {
  if (text === null || text === undefined) return '';
  // eslint-disable-next-line no-control-regex
  return String(text).replace(/[\r\n\t]+/g, ' ').replace(/[\u0000-\u001f\u007f]/g, '');
}

type Doc = PDFKit.PDFDocument;
interface TextOpts {
  style?: Style;
  size?: number;
  colour?: string;
  x?: number;
  y?: number;
  width?: number;
  continued?: boolean;
  align?: 'left' | 'right' | 'center';
  lineBreak?: boolean;
  indent?: number;
}

const registered = new WeakMap<Doc, Set<Face>>();

/**
 * Word layouts (shaping through the font's OpenType tables is most of a PDF's cost) kept across
 * documents, per face: pdfkit reads its layout cache and never changes an entry, and each document
 * still records which glyphs it used for its own subset. Started afresh past 50,000 words.
 */
const layoutCaches = new Map<Face, Record<string, unknown>>();
const LAYOUT_CACHE_WORDS = 50_000;

function sharedLayoutCache(f: Face): Record<string, unknown> {
  let cache = layoutCaches.get(f);
  if (!cache || Object.keys(cache).length > LAYOUT_CACHE_WORDS) {
    cache = Object.create(null) as Record<string, unknown>;
    layoutCaches.set(f, cache);
  }
  return cache;
}

/** Selects a face, embedding it in this document on first use (parsed once per process). */
function useFace(doc: Doc, f: Face): void {
  let set = registered.get(doc);
  if (!set) registered.set(doc, (set = new Set()));
  if (!set.has(f)) {
    // pdfkit accepts a parsed fontkit font: the face is read once per process, subset per document.
    doc.registerFont(f, face(f) as never);
    set.add(f);
    doc.font(f);
    const embedded = (doc as unknown as { _font?: { layoutCache?: Record<string, unknown> } })._font;
    if (embedded?.layoutCache) embedded.layoutCache = sharedLayoutCache(f);
    return;
  }
  doc.font(f);
}

/** Writes text in as many font runs as its scripts need, as one paragraph. */
function write(doc: Doc, text: string, o: TextOpts = {}): void {
  const runs = fontRuns(pdfText(text), o.style ?? 'regular');
  doc.fontSize(o.size ?? 10).fillColor(o.colour ?? COLOUR_TEXT);
  const base = { width: o.width ?? contentWidth(doc), ...(o.align ? { align: o.align } : {}), ...(o.lineBreak === false ? { lineBreak: false } : {}) };
  runs.forEach((run, i) => {
    useFace(doc, run.face);
    const continued = i < runs.length - 1 || o.continued === true;
    if (i === 0 && (o.x !== undefined || o.y !== undefined)) doc.text(run.text, o.x ?? doc.page.margins.left, o.y, { ...base, continued });
    else doc.text(run.text, { ...base, continued });
  });
}

function fixedDate(iso: string): Date {
  const ms = Date.parse(iso);
  return new Date(Number.isFinite(ms) ? ms : 0);
}

export async function renderPacketPdf(packet: TrustPacket): Promise<Buffer> {
  const created = fixedDate(packet.generatedAt);
  const doc = new PDFDocument({
    size: 'A4',
    margins: { top: 44, bottom: 56, left: 48, right: 48 },
    bufferPages: true,
    compress: true,
    // No standard (AFM) font: every face is embedded, and parsing Helvetica's metrics per document is wasted.
    font: '',
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

  writePageOne(doc, packet);
  doc.addPage();
  writeDetail(doc, packet);
  addPageNumbers(doc, packet);
  doc.end();
  return done;
}

function contentWidth(doc: Doc): number {
  return doc.page.width - doc.page.margins.left - doc.page.margins.right;
}

function bottom(doc: Doc): number {
  return doc.page.height - doc.page.margins.bottom;
}

function ensureSpace(doc: Doc, height: number): void {
  if (doc.y + height > bottom(doc)) doc.addPage();
}

/** A filled box with bold text (the verdict, warnings). */
function box(doc: Doc, text: string, level: keyof typeof BOX, size = 10.5): void {
  const width = contentWidth(doc);
  const c = BOX[level];
  useFace(doc, 'sansBold');
  doc.fontSize(size);
  // Measured in the Latin face; other scripts are about as wide, and the padding absorbs the rest.
  const h = doc.heightOfString(pdfText(text), { width: width - 20 }) + 14;
  ensureSpace(doc, h + 6);
  const top = doc.y;
  doc.save().lineWidth(1.2).rect(doc.page.margins.left, top, width, h).fillAndStroke(c.fill, c.stroke).restore();
  write(doc, text, { style: 'bold', size, colour: c.text, x: doc.page.margins.left + 10, y: top + 7, width: width - 20 });
  doc.x = doc.page.margins.left;
  doc.y = top + h + 6;
}

function heading(doc: Doc, text: string, asOf?: string): void {
  ensureSpace(doc, 60);
  doc.moveDown(0.6);
  write(doc, text, { style: 'bold', size: 14, x: doc.page.margins.left });
  if (asOf) write(doc, `As of ${formatTime(asOf)}`, { style: 'italic', size: 8.5, colour: COLOUR_MUTED });
  doc.moveDown(0.3);
}

function subheading(doc: Doc, text: string): void {
  ensureSpace(doc, 36);
  doc.moveDown(0.3);
  write(doc, text, { style: 'bold', size: 11, x: doc.page.margins.left });
}

function para(doc: Doc, text: string, o: TextOpts = {}): void {
  write(doc, text, { x: doc.page.margins.left, ...o });
}

/** "Label: value" with a bold label. */
function field(doc: Doc, label: string, value: string, valueColour = COLOUR_TEXT): void {
  write(doc, `${label}: `, { style: 'bold', x: doc.page.margins.left, continued: true });
  write(doc, value, { colour: valueColour });
}

function bullet(doc: Doc, text: string, o: { indent?: number; colour?: string; size?: number } = {}): void {
  const indent = o.indent ?? 0;
  const x = doc.page.margins.left + 10 + indent;
  write(doc, `•  ${text}`, { x, width: contentWidth(doc) - 10 - indent, colour: o.colour, size: o.size });
}

function pageOneLine(doc: Doc, line: Line): void {
  const x = doc.page.margins.left + 12;
  write(doc, line.note ? line.text : `•  ${line.text}`, { x, width: contentWidth(doc) - 12, size: line.note ? 8 : 9, colour: line.alert ? COLOUR_ALERT : line.note ? COLOUR_MUTED : COLOUR_TEXT });
  doc.moveDown(0.1);
}

function writePageOne(doc: Doc, packet: TrustPacket): void {
  const { agent, summary } = packet;
  const one = pageOne(packet);
  write(doc, `Trust packet: ${agent.name}`, { style: 'bold', size: 18 });
  const meta = [
    `Agent ${agent.id}`,
    `owner ${agent.owner}`,
    `risk tier ${agent.riskTier}`,
    `status ${agent.status}`,
    packet.audience ? `for ${packet.audience}` : null,
    `generated ${formatTime(packet.generatedAt)} for ${packet.requestedBy}`,
  ].filter((x): x is string => x !== null);
  write(doc, meta.join(' · '), { size: 8.5, colour: COLOUR_MUTED });
  write(doc, `Packet ${packet.id} (version ${packet.version}); every statement below is as of ${formatTime(summary.asOf)}.`, { size: 8, colour: COLOUR_MUTED });
  if (one.scope) {
    doc.moveDown(0.2);
    write(doc, one.scope.text, { style: 'bold', size: 9, colour: one.scope.alert ? COLOUR_ALERT : '#084298' });
  }
  doc.moveDown(0.5);
  box(doc, summary.verdict, summary.verdictLevel);

  for (const q of one.questions) {
    doc.moveDown(0.25);
    write(doc, q.title, { style: 'bold', size: 11.5, x: doc.page.margins.left });
    doc.moveDown(0.1);
    for (const line of q.lines) pageOneLine(doc, line);
  }

  // The score and a small 90-day chart, in the space left on the page.
  doc.moveDown(0.3);
  write(doc, one.score.text, { style: 'bold', size: 9.5, x: doc.page.margins.left });
  const width = contentWidth(doc);
  const room = bottom(doc) - doc.y - 6;
  const height = Math.max(70, Math.min(150, room));
  if (room >= 70) {
    const top = doc.y + 4;
    drawChart(doc, packet, { x: doc.page.margins.left, y: top, width, height });
    doc.x = doc.page.margins.left;
    doc.y = top + height + 2;
  } else {
    write(doc, 'The score chart is in "Score history" below.', { size: 8, colour: COLOUR_MUTED });
  }
}

const BANDS = [
  { name: 'bronze', colour: '#f3e0cf' },
  { name: 'silver', colour: '#e9ecef' },
  { name: 'gold', colour: '#fbf0c4' },
  { name: 'platinum', colour: '#dcebf5' },
] as const;

/**
 * The score history drawn as vector graphics in the page (no bitmap): tier bands, gridlines, the
 * daily line broken where a day has no score, dates along the time axis, the score now. Its text
 * uses the document's fonts, so it is crisp and extractable.
 */
function drawChart(doc: Doc, packet: TrustPacket, area: { x: number; y: number; width: number; height: number }): void {
  const h = packet.scoreHistory;
  const size = area.height < 120 ? 6.5 : 7.5;
  const m = { top: 4, right: 58, bottom: size + 8, left: 24 };
  const px = area.x + m.left;
  const py = area.y + m.top;
  const pw = area.width - m.left - m.right;
  const ph = area.height - m.top - m.bottom;
  const t1 = Date.parse(h.asOf);
  const fromMs = h.from ? Date.parse(h.from) : NaN;
  const t0 = Number.isFinite(fromMs) && fromMs < t1 ? fromMs : t1 - h.days * 86_400_000;
  const x = (t: number) => px + (pw * (t - t0)) / (t1 - t0);
  const y = (score: number) => py + ph * (1 - Math.min(SCORE_MAX, Math.max(0, score)) / SCORE_MAX);
  const th = DEFAULT_TIER_THRESHOLDS;
  const bounds = [0, th.silver, th.gold, th.platinum, SCORE_MAX];
  doc.save();
  BANDS.forEach((band, i) => {
    const top = y(bounds[i + 1]!);
    const bandHeight = y(bounds[i]!) - top;
    doc.rect(px, top, pw, bandHeight).fill(band.colour);
    if (bandHeight >= size) write(doc, band.name, { x: px + pw + 4, y: top + bandHeight / 2 - size / 2 - 1, size, colour: COLOUR_MUTED, lineBreak: false, width: m.right - 4 });
  });
  for (let sc = 0; sc <= SCORE_MAX; sc += 250) {
    doc.moveTo(px, y(sc)).lineTo(px + pw, y(sc)).lineWidth(0.3).strokeColor('#adb5bd').stroke();
    write(doc, String(sc), { x: area.x, y: y(sc) - size / 2 - 1, width: m.left - 3, align: 'right', size, colour: COLOUR_MUTED, lineBreak: false });
  }
  doc.moveTo(px, py).lineTo(px, py + ph).lineTo(px + pw, py + ph).lineWidth(0.6).strokeColor('#495057').stroke();
  const ticks = 6;
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + ((t1 - t0) * i) / ticks;
    doc.moveTo(x(t), py + ph).lineTo(x(t), py + ph + 2).lineWidth(0.6).strokeColor('#495057').stroke();
    const label = new Date(t).toISOString().slice(0, 10);
    write(doc, label, { x: x(t) - 30, y: py + ph + 3, width: 60, align: i === 0 ? 'left' : i === ticks ? 'right' : 'center', size, colour: COLOUR_MUTED, lineBreak: false });
  }
  const pts = h.points.map((p) => ({ t: Date.parse(p.at), score: p.score })).filter((p) => Number.isFinite(p.t) && p.t >= t0 - 86_400_000 && p.t <= t1);
  if (pts.length === 0) {
    write(doc, 'no score in this period', { x: px, y: py + ph / 2 - size, width: pw, align: 'center', size: size + 1, colour: COLOUR_MUTED, lineBreak: false });
  } else {
    pts.forEach((p, i) => {
      if (i === 0 || p.t - pts[i - 1]!.t > 2 * 86_400_000) doc.moveTo(x(p.t), y(p.score));
      else doc.lineTo(x(p.t), y(p.score));
    });
    doc.lineWidth(1.2).lineJoin('round').strokeColor('#1c4e80').stroke();
    const last = pts.at(-1)!;
    doc.circle(x(last.t), y(last.score), 2).fill('#1c4e80');
    write(doc, String(last.score), { x: x(last.t) - 40, y: Math.max(py, y(last.score) - size - 4), width: 38, align: 'right', style: 'bold', size, colour: '#1c4e80', lineBreak: false });
  }
  doc.restore();
  doc.fillColor(COLOUR_TEXT).strokeColor(COLOUR_TEXT).lineWidth(1);
}

function aggregateRows(doc: Doc, rows: TrustPacket['evidence']['byDimension'], label: (key: string, title?: string) => string): void {
  if (rows.length === 0) para(doc, 'None.');
  for (const a of rows) {
    ensureSpace(doc, 30);
    bullet(doc, `${label(a.key, a.title)}: ${a.count} items, ${pct(a.passRate)}; ${day(a.oldest)} to ${day(a.newest)} (${a.freshness === 'stale' ? 'STALE' : a.freshness}); ${a.staleCount} past the limit; last failure ${day(a.lastFailure)}`, {
      colour: a.freshness === 'stale' ? COLOUR_ALERT : COLOUR_TEXT,
      size: 9.5,
    });
  }
}

function writeDetail(doc: Doc, packet: TrustPacket): void {
  const { summary } = packet;

  heading(doc, 'Summary', summary.asOf);
  field(doc, 'Score', summary.score === null ? 'no score' : `${summary.score} (${summary.tier ?? 'no tier'})`);
  field(doc, '30-day change', summary.change30d === null ? 'no score 30 days ago' : `${formatSigned(summary.change30d)} (trend ${summary.trend})`);
  const ev = packet.evidence;
  field(doc, 'Newest evidence', `${summary.evidence === 'stale' ? 'STALE' : summary.evidence}${ev.staleCount ? `; ${ev.staleCount} of ${ev.total} items past the ${ev.staleAfterDays}-day staleness limit` : ''}`, summary.evidence === 'stale' || ev.staleCount ? COLOUR_ALERT : COLOUR_TEXT);
  if (summary.facts.length) {
    subheading(doc, 'Findings, worst first');
    for (const f of summary.facts) bullet(doc, `${packet.agent.name} ${f}`, { size: 9.5 });
  }

  heading(doc, 'Pacts', packet.pacts.asOf);
  if (packet.pacts.items.length === 0) para(doc, 'No pacts are recorded for this agent.');
  for (const pact of packet.pacts.items) {
    subheading(doc, pact.title);
    field(doc, 'Pact', `${pact.id}; severity ${pact.severity}`);
    field(doc, 'Verification', pact.verification);
    const result = pact.lastResult === null ? 'never verified' : pact.lastResult === 'failed' ? 'FAILED' : 'passed';
    const when = pact.lastVerified ? ` on ${formatTime(pact.lastVerified)}` : '';
    field(doc, 'Latest verification', `${result}${when} (evidence ${pact.freshness === 'stale' ? 'STALE' : pact.freshness})`, pact.lastResult === 'failed' || pact.freshness === 'stale' ? COLOUR_ALERT : COLOUR_TEXT);
    field(doc, 'Record', `${pact.evaluations} checks, ${pct(pact.passRate)}; last failure ${day(pact.lastFailure)}`);
    for (const clause of pact.clauses) bullet(doc, clause, { indent: 6, size: 9.5 });
  }

  heading(doc, 'Evidence', ev.asOf);
  const warning = staleEvidenceWarning(packet);
  if (warning) box(doc, warning, 'alert', 10);
  para(doc, ev.total === 0 ? 'No evidence is recorded for this agent.' : `${ev.total} evaluations from ${formatTime(ev.oldest)} to ${formatTime(ev.newest)}.`);
  subheading(doc, 'By dimension');
  aggregateRows(doc, ev.byDimension, (k) => k);
  subheading(doc, 'By pact');
  aggregateRows(doc, ev.byPact, (k, t) => (t && t !== k ? `${t} (${k})` : k));

  const chartWidth = contentWidth(doc);
  const chartHeight = 190;
  ensureSpace(doc, chartHeight + 90);
  heading(doc, 'Score history', packet.scoreHistory.asOf);
  const hist = scoreHistoryStats(packet);
  if (hist.count === 0 || !hist.first || !hist.last) para(doc, `No score in the last ${packet.scoreHistory.days} days.`);
  else para(doc, `${hist.count} daily scores from ${formatTime(hist.first.at)} (${hist.first.score}) to ${formatTime(hist.last.at)} (${hist.last.score}); low ${hist.min}, high ${hist.max}. Each day's score is the live formula replayed over the evidence observed up to that day; an external score stands from its own time on; the last point is the score in force now.`, { size: 9.5 });
  ensureSpace(doc, chartHeight + 10);
  const top = doc.y + 6;
  drawChart(doc, packet, { x: doc.page.margins.left, y: top, width: chartWidth, height: chartHeight });
  doc.x = doc.page.margins.left;
  doc.y = top + chartHeight + 6;

  const rc = packet.runtimeControls;
  heading(doc, 'Runtime controls', rc.asOf);
  field(doc, 'Status', rc.status);
  subheading(doc, packet.scope && !packet.scope.missing ? `Grants the workflow ${packet.scope.workflow} touches` : 'Grants');
  if (rc.grants.length === 0) para(doc, 'No grants.');
  for (const g of rc.grants) {
    const constraints = Object.keys(g.constraints).length === 0 ? 'no constraints' : `constraints ${JSON.stringify(g.constraints)}`;
    bullet(doc, `${g.scope}: ${g.state}; ${constraints}${g.keepInContainment ? '; kept in containment' : ''}`, { colour: g.state === 'active' ? COLOUR_TEXT : COLOUR_ALERT });
  }
  subheading(doc, 'Actions that need approval');
  if (rc.needsApproval.length === 0) para(doc, 'None.');
  for (const r of rc.needsApproval) bullet(doc, `${r.ruleId}: ${r.action ?? 'any action'}; quorum ${r.quorum} of ${r.approvers.length ? r.approvers.join(', ') : 'no approvers listed'}`);
  subheading(doc, 'Routing that tightens when the proof weakens');
  if (rc.tightens.length === 0) para(doc, 'None.');
  for (const t of rc.tightens) bullet(doc, `${t.ruleId}: when ${t.condition}${t.action ? ` for ${t.action}` : ''}: ${t.effect}${t.inForceNow ? ' (in force now)' : ''}`, { colour: t.inForceNow ? COLOUR_ALERT : COLOUR_TEXT });
  subheading(doc, 'Active containment actions');
  if (rc.activeActions.length === 0) para(doc, 'None.');
  for (const a of rc.activeActions) bullet(doc, `${a.kind} by ${a.actor} since ${formatTime(a.since)}${a.until ? ` until ${formatTime(a.until)}` : ' (no end set)'}: ${a.reason}`);

  heading(doc, 'Consequence rules', packet.consequences.asOf);
  if (packet.consequences.rules.length === 0) para(doc, 'The policy has no consequence rules.');
  for (const r of packet.consequences.rules) {
    bullet(doc, `${r.ruleId}: if ${r.when}, then ${r.effect}${r.applies ? '' : ' (does not change this agent)'}${r.conditionHoldsNow ? ' (its condition holds now)' : ''}`, { colour: r.conditionHoldsNow ? COLOUR_ALERT : r.applies ? COLOUR_TEXT : COLOUR_MUTED });
  }

  heading(doc, 'Incidents', packet.incidents.asOf);
  if (packet.incidents.items.length === 0) para(doc, 'No incidents.');
  for (const inc of packet.incidents.items) {
    const minutes = incidentMinutes(inc, packet.incidents.asOf);
    subheading(doc, `Incident ${inc.id}`);
    para(doc, `Opened ${formatTime(inc.openedAt)}; ${inc.closedAt ? `closed ${formatTime(inc.closedAt)}, lasted ${formatMinutes(minutes)}` : `still open, ${formatMinutes(minutes)} so far`}.`, inc.closedAt ? {} : { colour: COLOUR_ALERT });
    for (const s of inc.steps) bullet(doc, `${formatTime(s.at)} - ${s.kind}${s.breakGlass ? ' (BREAK-GLASS: no second person)' : ''} by ${s.actor}: ${s.reason}`, { indent: 6, size: 9.5 });
  }

  const ap = packet.approvals;
  heading(doc, 'Approvals', ap.asOf);
  para(doc, `Decisions in the last ${ap.days} days: ${ap.counts.approved} approved, ${ap.counts.denied} denied, ${ap.counts.expired} expired, ${ap.counts.cancelled} cancelled, ${ap.counts.pending} pending.`);
  field(doc, 'Median time to decision', ap.medianMinutesToDecision === null ? 'no decisions' : formatMinutes(ap.medianMinutesToDecision));

  const au = packet.auditIntegrity;
  heading(doc, 'Audit integrity', au.asOf);
  field(doc, 'Verification', au.verified ? 'verified - the hash chain is intact' : 'FAILED - the hash chain is broken', au.verified ? COLOUR_TEXT : COLOUR_ALERT);
  field(doc, 'Entries checked', String(au.entries));
  field(doc, 'Head sequence', au.headSeq);
  write(doc, 'Head hash: ', { style: 'bold', x: doc.page.margins.left });
  write(doc, au.headHash, { size: 8, x: doc.page.margins.left });
  if (au.firstBroken) field(doc, 'First broken entry', `sequence ${au.firstBroken.seq}: ${au.firstBroken.problem}`, COLOUR_ALERT);

  heading(doc, 'Appendix: evidence items', ev.asOf);
  para(doc, `The ${ev.items.length} most recent of ${ev.total} evaluations, newest first.`, { size: 9.5, colour: COLOUR_MUTED });
  for (const e of ev.items) {
    ensureSpace(doc, 26);
    write(doc, `${e.stale ? 'STALE  ' : ''}${formatTime(e.observedAt)} (${formatAgeDays(e.ageDays)} old) · ${e.dimension}: ${e.result}${e.pactId ? ` · pact ${e.pactId}` : ''} · ${e.source}${e.evidenceUrl ? ` · ${e.evidenceUrl}` : ''}`, {
      x: doc.page.margins.left,
      size: 8.5,
      colour: e.stale ? COLOUR_ALERT : COLOUR_TEXT,
    });
  }
  if (ev.omitted > 0) para(doc, `… ${ev.omitted} more not shown.`, { style: 'italic', size: 9, colour: COLOUR_MUTED });
}

function addPageNumbers(doc: Doc, packet: TrustPacket): void {
  const range = doc.bufferedPageRange();
  const footer = `Trust packet ${packet.id} - ${packet.agent.name} - generated ${formatTime(packet.generatedAt)}`;
  for (let i = range.start; i < range.start + range.count; i++) {
    doc.switchToPage(i);
    // Writing inside the bottom margin would make pdfkit add a page; lift the margin while we draw.
    const margin = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    const y = doc.page.height - 36;
    const width = contentWidth(doc);
    write(doc, footer, { x: doc.page.margins.left, y, width: width - 80, size: 7.5, colour: COLOUR_MUTED, lineBreak: false });
    write(doc, `Page ${i - range.start + 1} of ${range.count}`, { x: doc.page.margins.left, y, width, align: 'right', size: 7.5, colour: COLOUR_MUTED, lineBreak: false });
    doc.page.margins.bottom = margin;
  }
}
