import { describe, expect, it } from 'vitest';
import { SseParser, type SseEvent } from '../sdk/src/sse.js';

/** Feeds `chunks` to a parser and returns what it reported. */
function parse(chunks: string[], lastEventId = '') {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  const parser = new SseParser({ event: (e) => events.push(e), comment: (c) => comments.push(c), retry: (ms) => retries.push(ms) }, lastEventId);
  for (const chunk of chunks) parser.push(chunk);
  return { events, comments, retries, parser };
}

/** Every way of cutting `text` in two. */
const splits = (text: string) => Array.from({ length: text.length + 1 }, (_, i) => [text.slice(0, i), text.slice(i)]);

describe('the SDK SSE parser', () => {
  const stream = 'retry: 1000\n: ok 7\nevent: snapshot\nid: 7\ndata: {"version":"7"}\n\nevent: agent\nid: 9\ndata: {"a":1}\n\n';

  it('reads named events, ids, comments and retry', () => {
    const { events, comments, retries } = parse([stream]);
    expect(events).toEqual([
      { event: 'snapshot', data: '{"version":"7"}', lastEventId: '7' },
      { event: 'agent', data: '{"a":1}', lastEventId: '9' },
    ]);
    expect(comments).toEqual(['ok 7']);
    expect(retries).toEqual([1000]);
  });

  it('gives the same result wherever a chunk boundary falls, with LF, CRLF or CR line ends', () => {
    const expected = parse([stream]);
    for (const ending of ['\n', '\r\n', '\r']) {
      const text = stream.replace(/\n/g, ending);
      for (const [a, b] of splits(text)) {
        const got = parse([a as string, b as string]);
        expect(got.events, `${JSON.stringify(ending)} split at ${(a as string).length}`).toEqual(expected.events);
        expect(got.comments).toEqual(expected.comments);
      }
      // One character at a time.
      expect(parse([...text]).events).toEqual(expected.events);
    }
  });

  it('a CR at the end of one chunk and an LF at the start of the next are one line break, not two', () => {
    const { events } = parse(['data: a\r', '\ndata: b\r', '\n\r', '\n']);
    expect(events).toEqual([{ event: 'message', data: 'a\nb', lastEventId: '' }]);
  });

  it('joins multi-line data with LF and strips only one leading space', () => {
    const { events } = parse(['data:first\ndata:  second\ndata\n\n']);
    expect(events).toEqual([{ event: 'message', data: 'first\n second\n', lastEventId: '' }]);
  });

  it('an event without data is not dispatched, but its id carries over; ids with NUL are ignored', () => {
    const { events } = parse(['id: 3\nevent: x\n\ndata: y\n\nid: 4\0\ndata: z\n\n'], '1');
    expect(events).toEqual([
      { event: 'message', data: 'y', lastEventId: '3' },
      { event: 'message', data: 'z', lastEventId: '3' },
    ]);
  });

  it('ignores unknown fields, a bad retry and a leading BOM; holds an unfinished line', () => {
    const { events, retries, parser } = parse(['\uFEFFfoo: bar\nretry: 1s\ndata: ok\n\ndata: unfin']);
    expect(events).toEqual([{ event: 'message', data: 'ok', lastEventId: '' }]);
    expect(retries).toEqual([]);
    expect(parser.pending).toBe('data: unfin'.length);
  });
});
