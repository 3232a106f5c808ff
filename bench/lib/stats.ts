/** A growable list of latencies in milliseconds (float, from autocannon's hrtime per response). */
export class Samples {
  private values = new Float64Array(1 << 16);
  private n = 0;

  add(ms: number): void {
    if (this.n === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.n++] = ms;
  }

  get count(): number {
    return this.n;
  }

  /** Nearest-rank percentiles, e.g. percentiles([0.5, 0.99]). NaN when empty. */
  percentiles(qs: number[]): number[] {
    const sorted = this.values.slice(0, this.n).sort();
    return qs.map((q) => (this.n === 0 ? NaN : sorted[Math.min(this.n - 1, Math.max(0, Math.ceil(q * this.n) - 1))]!));
  }
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const fmtInt = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
export const fmtMs = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');

/** Plain-text table: first column left-aligned, the rest right-aligned. */
export function table(header: string[][], rows: string[][]): string {
  const all = [...header, ...rows];
  const widths = all[0]!.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [...header.map(line), rule, ...rows.map(line)].join('\n');
}
