/**
 * Child process: the baseline. A bare node:http server that does the least a JSON POST endpoint
 * can do: read the whole request body, parse it as JSON, answer a constant JSON body (the parent
 * passes a real decision answer, so both servers send the same bytes).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveChild } from '../lib/ipc.js';

let server: Server | undefined;

serveChild(
  async (options) => {
    const answer = Buffer.from(options.BODY ?? '{}', 'utf8');
    const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(answer.length) };
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        try {
          JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          res.writeHead(400, { 'content-type': 'application/json; charset=utf-8' });
          res.end('{"error":"bad json"}');
          return;
        }
        res.writeHead(200, headers);
        res.end(answer);
      });
    });
    // Same idle-socket settings as ours, so neither side closes keep-alive connections mid-run.
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 66_000;
    const s = server;
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve());
    });
    return (s.address() as AddressInfo).port;
  },
  async () => {
    const s = server;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  },
);
