import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpServer } from '../src/http/server.js';
import { Router } from '../src/http/router.js';
import { TokenAuthenticator } from '../src/http/auth.js';
import { createLogger } from '../src/observability/logger.js';
import { createMetrics } from '../src/observability/metrics.js';

/**
 * The headers the server reads itself (Authorization, Content-Type, Content-Length,
 * Transfer-Encoding) and those a handler reads: any case, and for a repeated Authorization the
 * first one, as Node keeps it.
 */
const TOKEN = 'headers-test-token-0123456789abcdef';
let server: Server;
let port: number;

beforeAll(async () => {
  const router = new Router().add({
    method: 'POST',
    path: '/v1/echo',
    auth: 'admin',
    handler: (ctx) => ({ status: 200, body: { got: ctx.body, custom: ctx.headers['x-custom'] ?? null } }),
  });
  server = createHttpServer({
    router,
    auth: new TokenAuthenticator([{ name: 'admin', token: TOKEN, scope: { kind: 'admin' } } as never]),
    logger: createLogger({ level: 'silent' }),
    metrics: createMetrics(),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Sends one raw request (header lines as given) and answers the status and the parsed JSON body. */
function raw(headerLines: string[], body: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += d.toString('utf8')));
    socket.on('error', reject);
    socket.on('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
      resolve({ status, json: JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) });
    });
    socket.end(`POST /v1/echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\n${headerLines.join('\r\n')}\r\n\r\n${body}`);
  });
}

const json = '{"a":1}';

describe('request headers', () => {
  it('in any case', async () => {
    const r = await raw([`AUTHORIZATION: Bearer ${TOKEN}`, 'CONTENT-TYPE: application/json', `Content-Length: ${json.length}`, 'X-Custom: yes'], json);
    expect(r).toEqual({ status: 200, json: { got: { a: 1 }, custom: 'yes' } });
  });

  it('a repeated Authorization counts as its first, as req.headers keeps it', async () => {
    const valid = await raw([`authorization: Bearer ${TOKEN}`, 'authorization: Bearer wrong-token-0123456789abcdef0123', 'content-type: application/json', `content-length: ${json.length}`], json);
    expect(valid.status).toBe(200);
    const invalid = await raw(['authorization: Bearer wrong-token-0123456789abcdef0123', `authorization: Bearer ${TOKEN}`, 'content-type: application/json', `content-length: ${json.length}`], json);
    expect(invalid.status).toBe(401);
    expect(invalid.json.error.message).toBe('the bearer token is not valid');
    const missing = await raw(['content-type: application/json', `content-length: ${json.length}`], json);
    expect(missing.status).toBe(401);
    expect(missing.json.error.message).toContain('missing Authorization');
  });

  it('a chunked body is read; a body of another type is refused with 415', async () => {
    const chunked = await raw([`authorization: Bearer ${TOKEN}`, 'content-type: application/json', 'transfer-encoding: chunked'], `${json.length.toString(16)}\r\n${json}\r\n0\r\n\r\n`);
    expect(chunked).toEqual({ status: 200, json: { got: { a: 1 }, custom: null } });
    const text = await raw([`authorization: Bearer ${TOKEN}`, 'Content-Type: text/plain', `content-length: ${json.length}`], json);
    expect(text.status).toBe(415);
  });
});
