/**
 * HTML that escapes by default. `html\`<p>${value}</p>\`` escapes every interpolated value; only a
 * `Raw` (another `html` result, or an explicit `raw()` of a fragment we built ourselves, such as the
 * score chart's SVG) is inserted as is. Arrays are joined; null, undefined and false render nothing.
 */
export class Raw {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

/** Marks a fragment as trusted markup. Never pass it text that came from a person or an agent. */
export const raw = (value: string): Raw => new Raw(value);

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);
}

export type HtmlValue = Raw | string | number | bigint | boolean | null | undefined | Date | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false || value === true) return '';
  if (value instanceof Raw) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value instanceof Date) return escapeHtml(value.toISOString());
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Raw {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Raw(out);
}

/** A path with its segments encoded: `/console/agents/${id}` with an id that may contain anything. */
export function path(strings: TemplateStringsArray, ...values: string[]): string {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += encodeURIComponent(values[i]!) + strings[i + 1]!;
  return out;
}
