import { describe, expect, it } from 'vitest';
import { WriteBatcher } from '../../src/agents/write-batcher.js';
import { ndjsonLines, parseImportLine } from '../../src/agents/agent-import.js';

/** A runner that records each batch and answers when told to (so a test can hold a batch in flight). */
function recordingRunner(fail?: (items: string[]) => boolean) {
  const batches: string[][] = [];
  const gates: (() => void)[] = [];
  const run = async (items: string[]) => {
    batches.push([...items]);
    await new Promise<void>((resolve) => gates.push(resolve));
    if (fail?.(items)) throw new Error(`batch ${items.join(',')} failed`);
    return items.map((i) => `done:${i}`);
  };
  const releaseAll = async () => {
    while (gates.length) gates.shift()!();
    await new Promise((r) => setImmediate(r));
  };
  return { run, batches, releaseAll };
}

const key = (s: string) => s.split('#')[0]!;

async function settle<T>(promises: Promise<T>[], release: () => Promise<void>): Promise<PromiseSettledResult<T>[]> {
  const all = Promise.allSettled(promises);
  for (let i = 0; i < 20; i++) await release();
  return all;
}

describe('WriteBatcher', () => {
  it('a lone write goes at once; writes that arrive while a batch is in flight share the next one', async () => {
    const r = recordingRunner();
    const b = new WriteBatcher(r.run, { maxBatch: 10, concurrency: 1, key });
    const first = b.submit('a');
    expect(r.batches).toEqual([['a']]);
    const rest = ['b', 'c', 'd'].map((x) => b.submit(x));
    expect(r.batches).toHaveLength(1);
    const results = await settle([first, ...rest], r.releaseAll);
    expect(results.map((x) => (x.status === 'fulfilled' ? x.value : 'rejected'))).toEqual(['done:a', 'done:b', 'done:c', 'done:d']);
    expect(r.batches).toEqual([['a'], ['b', 'c', 'd']]);
  });

  it('never puts two writes for one key in a batch, nor in two batches at once, and keeps their order', async () => {
    const r = recordingRunner();
    const b = new WriteBatcher(r.run, { maxBatch: 10, concurrency: 2, key });
    const p = ['x#1', 'x#2', 'y#1', 'x#3', 'z#1'].map((x) => b.submit(x));
    // x#1 went at once; a second batch could start, but not with x#2 while x#1 is in flight.
    expect(r.batches).toEqual([['x#1'], ['y#1']]);
    await settle(p, r.releaseAll);
    const order = r.batches.flat().filter((i) => i.startsWith('x#'));
    expect(order).toEqual(['x#1', 'x#2', 'x#3']);
    for (const batch of r.batches) expect(new Set(batch.map(key)).size).toBe(batch.length);
  });

  it('caps a batch at maxBatch', async () => {
    const r = recordingRunner();
    const b = new WriteBatcher(r.run, { maxBatch: 2, concurrency: 1, key });
    const p = ['a', 'b', 'c', 'd', 'e'].map((x) => b.submit(x));
    await settle(p, r.releaseAll);
    expect(r.batches).toEqual([['a'], ['b', 'c'], ['d', 'e']]);
  });

  it('when a batch fails as a whole, runs its writes one by one: only the culprit sees the error', async () => {
    const r = recordingRunner((items) => items.includes('bad'));
    const b = new WriteBatcher(r.run, { maxBatch: 10, concurrency: 1, key });
    const first = b.submit('a');
    const rest = ['b', 'bad', 'c'].map((x) => b.submit(x));
    const results = await settle([first, ...rest], r.releaseAll);
    expect(results.map((x) => (x.status === 'fulfilled' ? x.value : (x.reason as Error).message))).toEqual(['done:a', 'done:b', 'batch bad failed', 'done:c']);
    expect(r.batches).toEqual([['a'], ['b', 'bad', 'c'], ['b'], ['bad'], ['c']]);
  });
});

async function collect(chunks: (string | Buffer)[], limits = { maxLine: 16, maxBytes: 1000 }) {
  async function* body() {
    for (const c of chunks) yield c;
  }
  const out: unknown[] = [];
  for await (const l of ndjsonLines(body(), limits)) out.push(l);
  return out;
}

describe('ndjsonLines', () => {
  it('splits on LF and CRLF across chunk boundaries, numbering every line, blank ones too', async () => {
    expect(await collect(['{"a"', ':1}\r\n\n{"b":2}\n', '{"c"', ':3}'])).toEqual([
      { line: 1, text: '{"a":1}' },
      { line: 2, text: '' },
      { line: 3, text: '{"b":2}' },
      { line: 4, text: '{"c":3}' },
    ]);
  });

  it('keeps a multi-byte character split across chunks whole', async () => {
    const bytes = Buffer.from('"é"\n', 'utf8');
    expect(await collect([bytes.subarray(0, 2), bytes.subarray(2)])).toEqual([{ line: 1, text: '"é"' }]);
  });

  it('reports a line over the limit by its number and goes on with the next', async () => {
    expect(await collect(['short\n', 'x'.repeat(10), 'x'.repeat(10), 'x\nok\n', 'y'.repeat(17)])).toEqual([
      { line: 1, text: 'short' },
      { line: 2, problem: 'the line is longer than 16 bytes' },
      { line: 3, text: 'ok' },
      { line: 4, problem: 'the line is longer than 16 bytes' },
    ]);
  });

  it('stops with a 413 past the total limit', async () => {
    await expect(collect(['a\n'.repeat(10)], { maxLine: 16, maxBytes: 15 })).rejects.toMatchObject({ status: 413 });
  });
});

describe('parseImportLine', () => {
  const agent = { name: 'Bot', owner: 'a@example.com', riskTier: 'low', grants: [{ scope: 'crm:read' }] };

  it('takes the PUT body plus id', () => {
    expect(parseImportLine(JSON.stringify({ id: 'bot-1', ...agent }))).toMatchObject({
      id: 'bot-1',
      reg: { id: 'bot-1', name: 'Bot', grants: [{ scope: 'crm:read', constraints: {}, keepInContainment: false, expiresAt: null }] },
    });
  });

  it('says what is wrong with a line, as a PUT would', () => {
    expect(parseImportLine('{')).toEqual({ error: expect.stringMatching(/^the line is not valid JSON/) });
    expect(parseImportLine('"bot"')).toEqual({ error: expect.stringMatching(/expected a JSON object/) });
    expect(parseImportLine(JSON.stringify(agent))).toEqual({ error: expect.stringMatching(/id: required/) });
    expect(parseImportLine(JSON.stringify({ id: 'bot 1', ...agent }))).toEqual({ error: expect.stringMatching(/^invalid agent id/) });
    expect(parseImportLine(JSON.stringify({ id: 'bot-1', ...agent, grants: [{ scope: 'crm:read' }, { scope: 'crm:read' }] }))).toEqual({
      error: expect.stringMatching(/listed twice/),
    });
    expect(parseImportLine('{"id":"bot-1","name":"\\u0000"}')).toEqual({ error: expect.stringMatching(/NUL/) });
  });
});
