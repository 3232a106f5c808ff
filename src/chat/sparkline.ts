const BARS = '▁▂▃▄▅▆▇█';

/** A compact trend for chat: one bar per value, scaled between the series' own min and max. */
export function sparkline(values: readonly number[]): string {
  if (values.length === 0) return '(no changes)';
  const min = Math.min(...values);
  const max = Math.max(...values);
  return values.map((v) => (max === min ? BARS[3] : BARS[Math.round(((v - min) / (max - min)) * (BARS.length - 1))])).join('');
}
