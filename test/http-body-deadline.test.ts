import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpServer } from '../src/http/server.js';
import { Router } from '../src/http/router.js';
import { TokenAuthenticator } from '../src/http/auth.js';
import { createLogger } from '../src/observability/logger.js';
import { createMetrics } from '../src/observability/metrics.js';
import { waitFor } from './support/app.js';

/**
 * Bodies have a deadline per request (src/http/body-deadline.ts): a body still trickling in past
 * its deadline gets 408 and its socket closed, while a route that streams its body (the import)
 * has a longer one. Deadlines are shortened here so the test runs in seconds; both requests
 * send at the same slow pace, and only the ordinary one is cut off.
 */

const TOKEN = 'deadline-test-token-0123456789abcdef';
let server: Server;
let port: number;
const streamed: string[] = [];

beforeAll(async () => {
  const router = new Router()
    .add({ method: 'POST', path: '/v1/echo', auth: 'admin', handler: (ctx) => ({ status: 200, body: { got: ctx.body } }) })
    .add({
      method: 'POST',
      path: '/v1/slow-import',
      auth: 'admin',
      streamBody: true,
      handler: async (ctx) => {
        let text = '';
        for await (const chunk of ctx.req!) text += String(chunk);
        streamed.push(text);
        return { status: 200, body: { bytes: text.length } };
      },
    });
  server = createHttpServer({
    router,
    auth: new TokenAuthenticator([{ name: 'admin', token: TOKEN, scope: { kind: 'admin' } } as never]),
    logger: createLogger({ level: 'silent' }),
    metrics: createMetrics(),
    bodyDeadlines: { bodyMs: 400, streamBodyMs: 60_000, sweepMs: 50 },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Sends the headers, then the body a piece at a time until told to stop or the server answers. */
function trickle(path: string, pieces: string[], everyMs: number): { socket: Socket; answer: Promise<string>; sent: () => number } {
  const socket = connect(port, '127.0.0.1');
  const length = pieces.join('').length;
  socket.write(`POST ${path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`);
  let i = 0;
  const timer = setInterval(() => {
    if (i < pieces.length && !socket.destroyed) socket.write(pieces[i++]!);
    if (i >= pieces.length) clearInterval(timer);
  }, everyMs);
  let text = '';
  socket.on('data', (d) => (text += String(d)));
  const answer = new Promise<string>((resolve) => {
    socket.on('close', () => {
      clearInterval(timer);
      resolve(text);
    });
    socket.on('error', () => undefined);
  });
  return { socket, answer, sent: () => i };
}

describe('request body deadlines', () => {
  it('an ordinary body still arriving after its deadline gets 408 and the socket is closed', async () => {
    const body = JSON.stringify({ note: 'x'.repeat(40) });
    const pieces = body.split('');
    const t = trickle('/v1/echo', pieces, 50); // ~2.3 s to send, the deadline is 0.4 s
    const answer = await t.answer;
    expect(answer).toMatch(/^HTTP\/1.1 408 /);
    expect(answer).toContain('did not arrive within');
    expect(t.sent()).toBeLessThan(pieces.length);
  });

  it('the same body sent at once is answered', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/echo`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ note: 'quick' }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ got: { note: 'quick' } });
  });

  it('a streamed body (the import) may take longer than the ordinary deadline', async () => {
    const lines = Array.from({ length: 20 }, (_, i) => `{"line":${i}}\n`);
    const t = trickle('/v1/slow-import', lines, 60); // ~1.2 s, three times the ordinary deadline
    await waitFor(() => streamed.length === 1, 30_000);
    t.socket.end();
    const answer = await t.answer;
    expect(answer).toMatch(/^HTTP\/1.1 200 /);
    expect(streamed[0]).toBe(lines.join(''));
  });
});
