import { agentIdSchema, agentInputSchema } from '../api/schemas.js';
import { ErrorCode, isCodedError } from '../domain/errors.js';
import { HttpError, parseJsonText } from '../http/body.js';
import { parseInput } from '../http/validate.js';
import type { AgentRegistration } from './agents.repository.js';
import type { RegistrationItem, RegistrationOutcome } from './registration-batch.js';

/** The longest line an import takes: the largest body `PUT /v1/agents/{id}` takes. */
export const IMPORT_MAX_LINE_BYTES = 64 * 1024;
/** The largest import body (about 500,000 agents with a few grants each). */
export const IMPORT_MAX_BYTES = 256 * 1024 * 1024;
/** Registrations per transaction (one head-lock hold and one publish per batch). */
export const IMPORT_BATCH = 500;
/**
 * Batches applying at once: while one holds the audit head lock, the next writes its agent rows
 * and grants on another connection (Postgres then uses a second core), and the one after that is
 * read and checked.
 */
export const IMPORT_CONCURRENCY = 2;
/** At most this many refused lines are listed in the answer (`refusedCount` counts them all). */
export const IMPORT_MAX_REFUSED_LISTED = 1000;
/** Refused lines kept to pick the first ones from (refusals arrive slightly out of line order). */
const IMPORT_MAX_REFUSED_KEPT = 10 * IMPORT_MAX_REFUSED_LISTED;

/** One line of the body, as read: its number (from 1) and its text, or why it could not be read. */
type Line = { line: number; text: string } | { line: number; problem: string };

/**
 * Splits a byte stream into lines (LF or CRLF) without holding more than one line: a line longer
 * than `maxLine` is reported and skipped up to its end, never buffered. The stream is read as it
 * is consumed (backpressure: a slow consumer pauses the upload).
 */
export async function* ndjsonLines(body: AsyncIterable<Buffer | string>, limits: { maxLine: number; maxBytes: number }): AsyncGenerator<Line> {
  let parts: Buffer[] = [];
  let size = 0;
  let total = 0;
  let line = 1;
  let tooLong = false;
  const finish = (): Line => {
    const n = line++;
    if (tooLong) {
      tooLong = false;
      parts = [];
      size = 0;
      return { line: n, problem: `the line is longer than ${limits.maxLine} bytes` };
    }
    const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
    parts = [];
    size = 0;
    let text = buf.toString('utf8');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    return { line: n, text };
  };
  for await (const raw of body) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
    total += chunk.length;
    if (total > limits.maxBytes) throw new HttpError(413, ErrorCode.InvalidInput, `the import is larger than ${limits.maxBytes} bytes`);
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      if (!tooLong) {
        if (size + (end - start) > limits.maxLine) {
          tooLong = true;
          parts = [];
          size = 0;
        } else if (end > start) {
          parts.push(chunk.subarray(start, end));
          size += end - start;
        }
      }
      if (nl === -1) break;
      yield finish();
      start = nl + 1;
    }
  }
  if (size > 0 || tooLong) yield finish();
}

/** One line as a registration, or why it was refused (the same checks as `PUT /v1/agents/{id}`). */
export function parseImportLine(text: string): { id: string; reg: AgentRegistration } | { error: string } {
  try {
    const value = parseJsonText(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return { error: 'expected a JSON object: the PUT /v1/agents/{id} body plus "id"' };
    const { id: rawId, ...rest } = value as Record<string, unknown>;
    if (rawId === undefined) return { error: 'invalid agent: id: required (the agent id, e.g. "underwriting-bot")' };
    const id = parseInput(agentIdSchema, rawId, 'agent id');
    const body = parseInput(agentInputSchema, rest, 'agent');
    return {
      id,
      reg: {
        id,
        name: body.name,
        owner: body.owner,
        riskTier: body.riskTier,
        grants: body.grants.map((g) => ({
          scope: g.scope,
          constraints: g.constraints ?? {},
          keepInContainment: g.keepInContainment ?? false,
          expiresAt: g.expiresAt ? new Date(g.expiresAt) : null,
        })),
      },
    };
  } catch (err) {
    if (err instanceof HttpError || isCodedError(err)) return { error: err.message.replace(/^request body/, 'the line') };
    throw err;
  }
}

export interface ImportResult {
  /** Lines applied: agents registered, updated, or already exactly so (a repeated line changes nothing). */
  applied: number;
  created: number;
  updated: number;
  unchanged: number;
  /** Refused lines, in order (the first `IMPORT_MAX_REFUSED_LISTED`). */
  refused: { line: number; error: string }[];
  refusedCount: number;
  /** Lines read, blank ones included. */
  lines: number;
}

export interface ImportDeps {
  /** Registers distinct agents in one transaction (`AgentService.registerMany`). */
  registerMany(items: RegistrationItem[]): Promise<RegistrationOutcome[]>;
  actor: string;
  batchSize?: number;
  concurrency?: number;
}

/**
 * Imports agents from NDJSON, one agent per line: each line is checked as a PUT body is and
 * applied or refused on its own, with its line number. Lines are applied in batches (one
 * transaction each, up to `IMPORT_CONCURRENCY` at once) while the next batch is read; a second
 * line for an agent already in the batch starts a new batch, and a batch naming an agent that a
 * batch still applying names waits for it, so lines for one agent apply in order (the last one wins).
 */
export async function importAgents(body: AsyncIterable<Buffer | string>, deps: ImportDeps): Promise<ImportResult> {
  const result: ImportResult = { applied: 0, created: 0, updated: 0, unchanged: 0, refused: [], refusedCount: 0, lines: 0 };
  // Batches finish in order but a line refused on reading can come before an earlier line's
  // batch has finished: refusals are sorted by line at the end.
  const refused: { line: number; error: string }[] = [];
  const refuse = (line: number, error: string) => {
    result.refusedCount++;
    if (refused.length < IMPORT_MAX_REFUSED_KEPT) refused.push({ line, error });
  };
  const batchSize = deps.batchSize ?? IMPORT_BATCH;
  const concurrency = Math.max(1, deps.concurrency ?? IMPORT_CONCURRENCY);
  let batch: { line: number; item: RegistrationItem }[] = [];
  let ids = new Set<string>();
  /** Batches applying, oldest first, with the agents each names. */
  let applying: { done: Promise<void>; ids: Set<string>; finished: boolean }[] = [];
  const settled = async () => {
    await Promise.all(applying.map((a) => a.done));
    applying = [];
  };
  let nonBlank = 0;

  const apply = async (lines: { line: number; item: RegistrationItem }[]) => {
    const outcomes = await deps.registerMany(lines.map((l) => l.item));
    outcomes.forEach((o, i) => {
      if (!o.ok) return refuse(lines[i]!.line, o.error.message);
      result.applied++;
      if (o.created) result.created++;
      else if (o.changed) result.updated++;
      else result.unchanged++;
    });
  };
  const flush = async () => {
    const lines = batch;
    const named = ids;
    batch = [];
    ids = new Set();
    // A batch that names an agent a batch still applying names waits for every earlier batch:
    // lines for one agent apply in line order (the last one wins). Otherwise up to `concurrency`
    // batches apply at once; the first error stops the import (see below).
    applying = applying.filter((a) => !a.finished);
    if (applying.some((a) => [...named].some((id) => a.ids.has(id)))) await settled();
    while (applying.length >= concurrency) await applying.shift()!.done;
    const entry = { done: apply(lines), ids: named, finished: false };
    // Awaited when it leaves the window or at the end; never left as an unhandled rejection meanwhile.
    entry.done.then(() => (entry.finished = true), () => undefined);
    applying.push(entry);
  };

  try {
    for await (const l of ndjsonLines(body, { maxLine: IMPORT_MAX_LINE_BYTES, maxBytes: IMPORT_MAX_BYTES })) {
      result.lines = l.line;
      if ('problem' in l) {
        nonBlank++;
        refuse(l.line, l.problem);
        continue;
      }
      if (l.text.trim() === '') continue;
      nonBlank++;
      const parsed = parseImportLine(l.text);
      if ('error' in parsed) {
        refuse(l.line, parsed.error);
        continue;
      }
      if (ids.has(parsed.id) || batch.length >= batchSize) await flush();
      ids.add(parsed.id);
      batch.push({ line: l.line, item: { reg: parsed.reg, actor: deps.actor } });
    }
    if (batch.length > 0) await flush();
    await settled();
  } catch (err) {
    // What was applied stays applied (each batch committed on its own): say how far it got.
    await Promise.allSettled(applying.map((a) => a.done));
    const sofar = `lines up to ${result.lines} were read; ${result.applied} applied and ${result.refusedCount} refused before it stopped; nothing after that was applied`;
    if (err instanceof HttpError) throw new HttpError(err.status, err.code, `${err.message}: ${sofar}`);
    throw new HttpError(503, ErrorCode.Unavailable, `the import stopped on our side (a batch could not be written): ${sofar}. Send the lines again: a line already applied changes nothing`);
  }
  if (nonBlank === 0) throw new HttpError(400, ErrorCode.InvalidInput, 'the import is empty: send one agent per line (the PUT /v1/agents/{id} body plus "id")');
  result.refused = refused.sort((a, b) => a.line - b.line).slice(0, IMPORT_MAX_REFUSED_LISTED);
  return result;
}
