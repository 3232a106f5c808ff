import { Resvg } from '@resvg/resvg-js';
import { chartFonts } from './fonts.js';

/**
 * Score-history chart for trust packets: an SVG line chart (time on x, score 0–1000 on y, tier
 * bands shaded) and a PNG rendering of it through resvg. Pure functions of their input: no clock,
 * no network. The PNG's text uses the Noto fonts of fonts.ts (any script; no system fonts), so the
 * chart looks the same on every machine.
 */

export interface ScorePoint {
  at: string;
  score: number;
  tier?: string;
}

/** Lower bounds of the tiers above bronze (bronze is everything below `silver`). */
export interface TierThresholds {
  silver: number;
  gold: number;
  platinum: number;
}

export const DEFAULT_TIER_THRESHOLDS: Readonly<TierThresholds> = Object.freeze({ silver: 500, gold: 750, platinum: 900 });

export interface ScoreChartOptions {
  width?: number;
  height?: number;
  title?: string;
  thresholds?: TierThresholds;
  /** CSS font-family list used for all text in the SVG. */
  fontFamily?: string;
  /** The time axis: from and to (ISO). Without them the axis spans the points. */
  from?: string;
  to?: string;
}

export const SCORE_MAX = 1000;
const DEFAULT_FONT = "'Noto Sans', 'DejaVu Sans', Arial, Helvetica, sans-serif";
const BAND_COLOURS = { bronze: '#f3e0cf', silver: '#e9ecef', gold: '#fbf0c4', platinum: '#dcebf5' } as const;
const DAY_MS = 86_400_000;

/** Drop the control characters XML 1.0 forbids (everything below U+0020 except tab, LF, CR). */
function stripControls(text: string): string {
  return Array.from(text).filter((c) => {
    const cp = c.codePointAt(0) ?? 0;
    return cp >= 0x20 || cp === 0x09 || cp === 0x0a || cp === 0x0d;
  }).join('');
}

export function escapeXml(text: string): string {
  return stripControls(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function num(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function clampScore(score: number): number {
  return Math.min(SCORE_MAX, Math.max(0, score));
}

/** Valid points (parsable time, finite score) in time order. */
function usablePoints(points: readonly ScorePoint[]): { t: number; score: number }[] {
  return points
    .map((p) => ({ t: Date.parse(p.at), score: p.score }))
    .filter((p) => Number.isFinite(p.t) && Number.isFinite(p.score))
    .map((p) => ({ t: p.t, score: clampScore(p.score) }))
    .sort((a, b) => a.t - b.t);
}

function checkThresholds(th: TierThresholds): void {
  const ok = [th.silver, th.gold, th.platinum].every((v) => Number.isFinite(v) && v >= 0 && v <= SCORE_MAX)
    && th.silver <= th.gold && th.gold <= th.platinum;
  if (!ok) throw new RangeError('tier thresholds must satisfy 0 <= silver <= gold <= platinum <= 1000');
}

export function renderScoreChartSvg(points: readonly ScorePoint[], opts: ScoreChartOptions = {}): string {
  const width = opts.width ?? 800;
  const height = opts.height ?? 320;
  if (!(width >= 200 && height >= 120)) throw new RangeError('chart must be at least 200x120');
  const th = opts.thresholds ?? DEFAULT_TIER_THRESHOLDS;
  checkThresholds(th);
  const title = opts.title ?? 'Trust score, last 90 days';
  const font = escapeXml(opts.fontFamily ?? DEFAULT_FONT);

  const margin = { top: 40, right: 84, bottom: 42, left: 52 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const y = (score: number): number => margin.top + plotH * (1 - score / SCORE_MAX);

  const pts = usablePoints(points);
  const first = pts[0];
  const last = pts[pts.length - 1];
  // A fixed axis (from/to) when given; else the points' span. With a single point (or all points at
  // one instant) and no fixed axis, a one-day span around it.
  const fixedFrom = opts.from ? Date.parse(opts.from) : NaN;
  const fixedTo = opts.to ? Date.parse(opts.to) : NaN;
  const fixed = Number.isFinite(fixedFrom) && Number.isFinite(fixedTo) && fixedTo > fixedFrom;
  const spread = first !== undefined && last !== undefined && (last.t > first.t || fixed) && (pts.length > 1 || fixed);
  const t0 = fixed ? fixedFrom : first ? (spread ? first.t : first.t - DAY_MS / 2) : 0;
  const t1 = fixed ? fixedTo : last ? (spread ? last.t : last.t + DAY_MS / 2) : 1;
  const x = (t: number): number => margin.left + (plotW * (t - t0)) / (t1 - t0);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${font}">`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold" fill="#212529">${escapeXml(title)}</text>`);

  // Tier bands, bottom to top.
  const bands: { name: keyof typeof BAND_COLOURS; from: number; to: number }[] = [
    { name: 'bronze', from: 0, to: th.silver },
    { name: 'silver', from: th.silver, to: th.gold },
    { name: 'gold', from: th.gold, to: th.platinum },
    { name: 'platinum', from: th.platinum, to: SCORE_MAX },
  ];
  for (const band of bands) {
    if (band.to <= band.from) continue;
    const top = y(band.to);
    const h = y(band.from) - top;
    out.push(`<rect x="${margin.left}" y="${num(top)}" width="${plotW}" height="${num(h)}" fill="${BAND_COLOURS[band.name]}"/>`);
    const label = band.name === 'platinum' ? `platinum ≥${band.from}` : band.name === 'bronze' ? `bronze <${band.to}` : `${band.name} ${band.from}–${band.to - 1}`;
    if (h >= 11) {
      out.push(`<text x="${margin.left + plotW + 6}" y="${num(top + h / 2 + 4)}" font-size="10" fill="#495057">${escapeXml(label)}</text>`);
    }
  }

  // Y axis: gridlines and labels every 250.
  for (let s = 0; s <= SCORE_MAX; s += 250) {
    out.push(`<line x1="${margin.left}" y1="${num(y(s))}" x2="${margin.left + plotW}" y2="${num(y(s))}" stroke="#ced4da" stroke-width="0.5"/>`);
    out.push(`<text x="${margin.left - 6}" y="${num(y(s) + 4)}" text-anchor="end" font-size="11" fill="#495057">${s}</text>`);
  }
  out.push(`<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${margin.top + plotH}" stroke="#495057" stroke-width="1"/>`);
  out.push(`<line x1="${margin.left}" y1="${margin.top + plotH}" x2="${margin.left + plotW}" y2="${margin.top + plotH}" stroke="#495057" stroke-width="1"/>`);
  out.push(`<text transform="translate(14 ${num(margin.top + plotH / 2)}) rotate(-90)" text-anchor="middle" font-size="11" fill="#495057">score</text>`);

  if (first && last) {
    // X axis: dates spread over the axis (seven over a long span, else start, middle and end).
    const n = t1 - t0 >= 14 * DAY_MS && plotW >= 420 ? 6 : 2;
    const ticks = spread ? Array.from({ length: n + 1 }, (_, i) => t0 + ((t1 - t0) * i) / n) : [first.t];
    for (const t of ticks) {
      const anchor = ticks.length === 1 ? 'middle' : t === t0 ? 'start' : t === t1 ? 'end' : 'middle';
      out.push(`<line x1="${num(x(t))}" y1="${margin.top + plotH}" x2="${num(x(t))}" y2="${margin.top + plotH + 4}" stroke="#495057"/>`);
      out.push(`<text x="${num(x(t))}" y="${margin.top + plotH + 16}" text-anchor="${anchor}" font-size="11" fill="#495057">${isoDay(t)}</text>`);
    }
  }
  out.push(`<text x="${margin.left + plotW / 2}" y="${height - 8}" text-anchor="middle" font-size="11" fill="#495057">date (UTC)</text>`);

  if (spread && first && last && pts.length === 1) {
    out.push(`<circle cx="${num(x(first.t))}" cy="${num(y(first.score))}" r="3.5" fill="#1c4e80"/>`);
    out.push(`<text x="${num(x(first.t) - 6)}" y="${num(Math.max(margin.top + 12, y(first.score) - 8))}" text-anchor="end" font-size="11" font-weight="bold" fill="#1c4e80">${num(first.score)}</text>`);
  } else if (spread && first && last) {
    // A day without a score (no evidence in its window) breaks the line rather than bridging it.
    const path = pts.map((p, i) => `${i === 0 || p.t - pts[i - 1]!.t > 2 * DAY_MS ? 'M' : 'L'}${num(x(p.t))} ${num(y(p.score))}`).join(' ');
    out.push(`<path d="${path}" fill="none" stroke="#1c4e80" stroke-width="2" stroke-linejoin="round"/>`);
    out.push(`<circle cx="${num(x(last.t))}" cy="${num(y(last.score))}" r="3.5" fill="#1c4e80"/>`);
    out.push(`<text x="${num(x(last.t) - 6)}" y="${num(Math.max(margin.top + 12, y(last.score) - 8))}" text-anchor="end" font-size="11" font-weight="bold" fill="#1c4e80">${num(last.score)}</text>`);
  } else {
    const message = pts.length === 0 ? 'no score history' : 'no score history (one point)';
    // Keep the message clear of the single point: centre, or the half of the plot away from it.
    const messageY = !first ? margin.top + plotH / 2 : first.score >= SCORE_MAX / 2 ? margin.top + plotH * 0.75 : margin.top + plotH * 0.3;
    if (first) {
      out.push(`<circle cx="${num(x(first.t))}" cy="${num(y(first.score))}" r="4" fill="#1c4e80"/>`);
    }
    out.push(`<text x="${num(margin.left + plotW / 2)}" y="${num(messageY)}" text-anchor="middle" font-size="14" fill="#6c757d">${escapeXml(message)}</text>`);
  }

  out.push('</svg>');
  return out.join('\n');
}

export interface ScoreChartPngOptions extends ScoreChartOptions {
  /** Font family resvg falls back to when a requested family is missing. */
  defaultFontFamily?: string;
}

/** PNG of the chart, exactly `width` x `height` pixels, its text in the packaged Noto fonts. */
export function renderScoreChartPng(points: readonly ScorePoint[], opts: ScoreChartPngOptions = {}): Buffer {
  const { width = 800, height = 320, defaultFontFamily = 'Noto Sans', ...rest } = opts;
  const fonts = chartFonts(rest.title ?? '');
  const svg = renderScoreChartSvg(points, { fontFamily: fonts.families, ...rest, width, height });
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'original' },
    font: { loadSystemFonts: false, fontFiles: fonts.files, defaultFontFamily },
    background: '#ffffff',
  });
  return resvg.render().asPng();
}

/** The chart of a packet's score history: its 90 days on the axis, the agent's name in the title. */
export function packetChartPng(packet: { agent: { name: string }; scoreHistory: { days: number; from?: string; asOf: string; points: readonly ScorePoint[] } }, size: { width: number; height: number } = { width: 800, height: 320 }): Buffer {
  const h = packet.scoreHistory;
  return renderScoreChartPng(h.points, { ...size, title: `Trust score of ${packet.agent.name}, last ${h.days} days`, ...(h.from ? { from: h.from, to: h.asOf } : {}) });
}
