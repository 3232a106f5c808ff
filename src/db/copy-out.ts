import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';

/**
 * Reads `COPY (<query>) TO STDOUT` in Postgres' text format, row by row, straight from the bytes.
 *
 * Why not ordinary queries: for a bulk read (the permission view's first load, 100,000 agents and
 * their grants) the cost is in making row objects and strings nobody keeps. Postgres writes COPY
 * text about as cheaply as it can write anything (no JSON building, no row description), and here a
 * field becomes a string only when the caller asks for it: numbers, booleans and times are read
 * from the bytes, and a string that is asked for is a fresh, flat copy, never a slice of a
 * large buffer that it would keep alive.
 *
 * The text format (https://www.postgresql.org/docs/current/sql-copy.html): one line per row, fields
 * separated by a tab, `\N` for NULL, and backslash escapes for backslash, tab, newline and the other
 * control characters. Times are read in the ISO style with the session's time zone set to UTC (the
 * caller sets both, see `COPY_SESSION`).
 */
export interface CopyRow {
  /** How many fields this row has. */
  readonly length: number;
  isNull(i: number): boolean;
  /** The field as text (UTF-8, escapes undone); null for NULL. */
  text(i: number): string | null;
  /** The field as text; throws on NULL (for NOT NULL columns). */
  str(i: number): string;
  /** True when the field's text is exactly `s` (no string is made). */
  equals(i: number, s: string): boolean;
  /** A boolean column (`t` / `f`). */
  bool(i: number): boolean;
  /** An integer column; exact only up to 2^53. */
  int(i: number): number;
  /** A bigint column as a bigint (exact). */
  bigint(i: number): bigint;
  /** A timestamptz column (ISO style, UTC) as epoch milliseconds (truncated, as `new Date(text)` does); null for NULL. */
  epochMs(i: number): number | null;
  /** A json/jsonb column, parsed; null for NULL. */
  json(i: number): unknown;
  /** A hash of the field's bytes (equal texts hash equally): to find a string already made without making it again. */
  hash(i: number): number;
}

/** What the session needs for `epochMs` to read times: run inside the transaction, before the COPY. */
export const COPY_SESSION = "set local timezone = 'UTC'; set local datestyle = 'ISO, YMD'";

const TAB = 9;
const NEWLINE = 10;
const BACKSLASH = 92;

/** Runs one COPY … TO STDOUT on `client` and calls `onRow` for every row, in the order Postgres sends them. */
export async function copyOut(client: pg.ClientBase, query: string, onRow: (row: CopyRow) => void): Promise<number> {
  const stream = client.query(copyTo(`copy (${query}) to stdout`));
  const row = new RowCursor();
  let carry: Buffer | null = null;
  let rows = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let from = 0;
    if (carry) {
      // A row split across chunks: join its two parts (only that row is copied).
      const nl = chunk.indexOf(NEWLINE);
      if (nl < 0) {
        carry = Buffer.concat([carry, chunk]);
        continue;
      }
      const whole = Buffer.concat([carry, chunk.subarray(0, nl + 1)]);
      carry = null;
      row.scan(whole, 0, whole.length - 1);
      onRow(row);
      rows++;
      from = nl + 1;
    }
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, from);
      if (nl < 0) break;
      row.scan(chunk, from, nl);
      onRow(row);
      rows++;
      from = nl + 1;
    }
    // Copied: the chunk itself must not be kept alive by the tail.
    if (from < chunk.length) carry = Buffer.from(chunk.subarray(from));
  }
  if (carry) throw new Error('COPY ended in the middle of a row');
  return rows;
}

/** One row at a time over the received bytes: field bounds only, strings made on demand. */
class RowCursor implements CopyRow {
  private buf: Buffer = Buffer.alloc(0);
  private starts: number[] = [];
  private ends: number[] = [];
  length = 0;

  scan(buf: Buffer, start: number, end: number): void {
    this.buf = buf;
    let n = 0;
    let s = start;
    for (let i = start; i < end; i++) {
      if (buf[i] === TAB) {
        this.starts[n] = s;
        this.ends[n] = i;
        n++;
        s = i + 1;
      }
    }
    this.starts[n] = s;
    this.ends[n] = end;
    this.length = n + 1;
  }

  /** Where field `i` starts (its end is `this.ends[i]`). */
  private start(i: number): number {
    if (i >= this.length) throw new Error(`COPY row has ${this.length} fields, asked for field ${i}`);
    return this.starts[i]!;
  }

  isNull(i: number): boolean {
    const s = this.start(i);
    const e = this.ends[i]!;
    return e - s === 2 && this.buf[s] === BACKSLASH && this.buf[s + 1] === 78; // \N
  }

  text(i: number): string | null {
    if (this.isNull(i)) return null;
    const s = this.start(i);
    const e = this.ends[i]!;
    const buf = this.buf;
    for (let k = s; k < e; k++) if (buf[k] === BACKSLASH) return unescape(buf, s, e);
    return buf.toString('utf8', s, e);
  }

  str(i: number): string {
    const t = this.text(i);
    if (t === null) throw new Error(`COPY field ${i} is NULL where a value was expected`);
    return t;
  }

  equals(i: number, value: string): boolean {
    const s = this.start(i);
    const e = this.ends[i]!;
    if (e - s !== value.length) return false;
    const buf = this.buf;
    for (let k = 0; k < value.length; k++) {
      const c = buf[s + k]!;
      // A byte above 127 is part of a multi-byte character: compare the decoded text instead.
      if (c > 127 || c === BACKSLASH) return this.text(i) === value;
      if (c !== value.charCodeAt(k)) return false;
    }
    return true;
  }

  bool(i: number): boolean {
    const s = this.start(i);
    const e = this.ends[i]!;
    if (e - s !== 1) throw new Error(`COPY field ${i} is not a boolean`);
    return this.buf[s] === 116; // t
  }

  int(i: number): number {
    const s = this.start(i);
    const e = this.ends[i]!;
    const buf = this.buf;
    let k = s;
    const negative = buf[k] === 45; // -
    if (negative) k++;
    if (k === e) throw new Error(`COPY field ${i} is not an integer`);
    let n = 0;
    for (; k < e; k++) {
      const d = buf[k]! - 48;
      if (d < 0 || d > 9) throw new Error(`COPY field ${i} is not an integer`);
      n = n * 10 + d;
    }
    return negative ? -n : n;
  }

  bigint(i: number): bigint {
    const s = this.start(i);
    const e = this.ends[i]!;
    // Up to 15 digits a double is exact: skip the string.
    return e - s <= 15 ? BigInt(this.int(i)) : BigInt(this.str(i));
  }

  epochMs(i: number): number | null {
    if (this.isNull(i)) return null;
    const s = this.start(i);
    const e = this.ends[i]!;
    const b = this.buf;
    // 'YYYY-MM-DD HH:MM:SS[.ffffff]+00' (ISO style, UTC). Anything else (years past 9999, BC,
    // infinity) goes through Date's own parser.
    const fast =
      e - s >= 22 &&
      b[s + 4] === 45 &&
      b[s + 7] === 45 &&
      b[s + 10] === 32 &&
      b[s + 13] === 58 &&
      b[s + 16] === 58 &&
      b[e - 3] === 43 &&
      b[e - 2] === 48 &&
      b[e - 1] === 48 &&
      (e - s === 22 || b[s + 19] === 46);
    if (fast) {
      const year = digits(b, s, 4);
      // Fraction: the first three digits, as milliseconds (the rest truncated, as Date does).
      let ms = 0;
      for (let k = s + 20, scale = 100; k < s + 23 && k < e - 3; k++, scale /= 10) ms += (b[k]! - 48) * scale;
      if (year >= 100) return Date.UTC(year, digits(b, s + 5, 2) - 1, digits(b, s + 8, 2), digits(b, s + 11, 2), digits(b, s + 14, 2), digits(b, s + 17, 2), ms);
    }
    const t = this.str(i);
    return new Date(t.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')).getTime();
  }

  hash(i: number): number {
    const s = this.start(i);
    const e = this.ends[i]!;
    const b = this.buf;
    // FNV-1a over the bytes.
    let h = 0x811c9dc5;
    for (let k = s; k < e; k++) h = Math.imul(h ^ b[k]!, 0x01000193);
    return h >>> 0;
  }

  json(i: number): unknown {
    const t = this.text(i);
    return t === null ? null : JSON.parse(t);
  }
}

/** The decimal number written in `count` ASCII digits at `at`. */
function digits(b: Buffer, at: number, count: number): number {
  let n = 0;
  for (let k = at; k < at + count; k++) n = n * 10 + (b[k]! - 48);
  return n;
}

const ESCAPES: Record<number, number> = { 98: 8, 102: 12, 110: 10, 114: 13, 116: 9, 118: 11 }; // b f n r t v

/** Undoes COPY's backslash escapes (`\\`, `\t`, `\n`, …, and `\ooo` / `\xhh` byte escapes). */
function unescape(buf: Buffer, s: number, e: number): string {
  const out = Buffer.allocUnsafe(e - s);
  let n = 0;
  for (let k = s; k < e; k++) {
    const c = buf[k]!;
    if (c !== BACKSLASH || k + 1 >= e) {
      out[n++] = c;
      continue;
    }
    const next = buf[++k]!;
    if (ESCAPES[next] !== undefined) out[n++] = ESCAPES[next];
    else if (next >= 48 && next <= 55) {
      let v = next - 48;
      for (let j = 0; j < 2 && k + 1 < e && buf[k + 1]! >= 48 && buf[k + 1]! <= 55; j++) v = v * 8 + (buf[++k]! - 48);
      out[n++] = v & 0xff;
    } else if (next === 120 && k + 1 < e && isHex(buf[k + 1]!)) {
      let v = 0;
      for (let j = 0; j < 2 && k + 1 < e && isHex(buf[k + 1]!); j++) v = v * 16 + hexValue(buf[++k]!);
      out[n++] = v;
    } else out[n++] = next;
  }
  return out.toString('utf8', 0, n);
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

function hexValue(c: number): number {
  return c <= 57 ? c - 48 : (c | 32) - 87;
}
