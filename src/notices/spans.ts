import { clip, LIMITS, type Span, type Text } from './model.js';

/** Identifiers as code spans, separated by commas; `none` for an empty list. */
export function codeList(items: readonly string[], empty = 'none'): Text {
  if (items.length === 0) return [empty];
  return items.flatMap((item, i): Span[] => (i === 0 ? [{ code: item }] : [', ', { code: item }]));
}

/** Lines joined with a separator into one line. */
export function joinText(parts: readonly Text[], separator: string): Text {
  return parts.flatMap((part, i) => (i === 0 ? part : [separator, ...part]));
}

/** User text shown in a line: clipped to the model's limit for one line. */
export const userText = (text: string, max: number = LIMITS.line): string => clip(text, max);

/** `1 request`, `2 requests`. */
export const plural = (n: number, word: string, many = `${word}s`): string => `${n} ${n === 1 ? word : many}`;
