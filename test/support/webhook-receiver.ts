import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  /** The path it was posted to (approval callbacks may each have their own). */
  path?: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  at: number;
}

/**
 * A local HTTP endpoint standing in for a SIEM or any system consuming our event webhook.
 * `respond` decides each answer (status, or 'hang' to never answer), so tests can inject failures.
 */
export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  respond: (req: ReceivedRequest, index: number) => number | 'hang' | Promise<number | 'hang'> = () => 200;
  private server: Server | undefined;
  private address = '';

  /** The URL it listens on (after start). */
  url(): string {
    return this.address;
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const received: ReceivedRequest = { path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
        const index = this.requests.push(received) - 1;
        // A slow receiver answers later (a promise); the request counts as received either way.
        const answer = await this.respond(received, index);
        if (answer === 'hang' || res.destroyed) return;
        res.writeHead(answer, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.address = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}/events`;
    return this.address;
  }

  /** Distinct delivery ids received with a 2xx-intended answer. */
  deliveryIds(): string[] {
    return this.requests.map((r) => String(r.headers['x-armalo-delivery']));
  }

  events(): { id: string; type: string; data: Record<string, unknown> }[] {
    return this.requests.map((r) => JSON.parse(r.body) as { id: string; type: string; data: Record<string, unknown> });
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}
