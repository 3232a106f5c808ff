import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveChild } from '../lib/ipc.js';
let server: Server | undefined;
let n = 0;
serveChild(
  async (options) => {
    const text = options.BODY ?? '{}';
    const answer = Buffer.from(text, 'utf8');
    const mode = options.MODE ?? 'bare';
    const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(answer.length) };
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (mode === 'bare') { res.writeHead(200, headers); res.end(answer); return; }
        if (mode === 'four') {
          res.writeHead(200, ['content-type', 'application/json; charset=utf-8', 'cache-control', 'no-store', 'content-length', String(answer.length), 'x-request-id', `abcdef012345-${(++n).toString(36)}`]);
          res.end(answer);
          return;
        }
        if (mode === 'fourstr') {
          res.writeHead(200, ['content-type', 'application/json; charset=utf-8', 'cache-control', 'no-store', 'content-length', String(Buffer.byteLength(text)), 'x-request-id', `abcdef012345-${(++n).toString(36)}`]);
          res.end(text);
          return;
        }
      });
    });
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 66_000;
    const s = server;
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
    return (s.address() as AddressInfo).port;
  },
  async () => { server?.close(); },
);
