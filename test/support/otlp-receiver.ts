import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A span as an OTLP/HTTP export carries it, with its service's name. */
export interface ReceivedSpan {
  service: string | undefined;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  attributes: Record<string, unknown>;
}

interface OtlpValue { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number }
interface OtlpAttribute { key: string; value: OtlpValue }
interface OtlpExport {
  resourceSpans?: {
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans?: { spans?: { traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: OtlpAttribute[] }[] }[];
  }[];
}

const valueOf = (v: OtlpValue): unknown => v.stringValue ?? v.intValue ?? v.boolValue ?? v.doubleValue;
const attributesOf = (list: OtlpAttribute[] | undefined) => Object.fromEntries((list ?? []).map((a) => [a.key, valueOf(a.value)]));

/**
 * A local OTLP/HTTP trace receiver (what a collector or Jaeger listens to on :4318): accepts
 * `POST /v1/traces`, counts the exports, and decodes the JSON ones (our exporter,
 * exporter-trace-otlp-http, sends JSON). Protobuf exports are counted and kept raw: a span name
 * is a plain UTF-8 string inside them, enough to look one up.
 */
export class OtlpReceiver {
  readonly exports: { contentType: string; body: Buffer }[] = [];
  readonly spans: ReceivedSpan[] = [];
  private server: Server | undefined;
  url = '';

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          res.writeHead(404).end();
          return;
        }
        const contentType = String(req.headers['content-type'] ?? '');
        const body = Buffer.concat(chunks);
        this.exports.push({ contentType, body });
        if (contentType.includes('json')) this.decode(JSON.parse(body.toString('utf8')) as OtlpExport);
        res.writeHead(200, { 'content-type': contentType.includes('json') ? 'application/json' : 'application/x-protobuf' });
        res.end(contentType.includes('json') ? '{}' : undefined);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  /** Whether any export so far holds a span of this name (decoded JSON, or the raw protobuf bytes). */
  has(name: string): boolean {
    return this.spans.some((s) => s.name === name) || this.exports.some((e) => !e.contentType.includes('json') && e.body.includes(Buffer.from(name)));
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => (this.server ? this.server.close(resolve) : resolve(undefined)));
  }

  private decode(body: OtlpExport): void {
    for (const rs of body.resourceSpans ?? []) {
      const service = attributesOf(rs.resource?.attributes)['service.name'] as string | undefined;
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          this.spans.push({ service, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, name: s.name, attributes: attributesOf(s.attributes) });
        }
      }
    }
  }
}
