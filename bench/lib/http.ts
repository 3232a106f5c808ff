import { Agent, request } from 'node:http';

/** One HTTP exchange, timed on this process's monotonic clock (performance.now(), ms). */
export interface Answer {
  status: number;
  body: string;
  /** Just before the request was handed to node:http (a new connection's set-up counts). */
  sentAt: number;
  /** When the last byte of the answer had arrived. */
  doneAt: number;
  /** doneAt - sentAt. */
  ms: number;
}

/**
 * A pool of keep-alive connections to one server. Separate pools never share a connection, so
 * the benchmark can keep a poller's requests and a command's on different sockets.
 */
export class HttpPool {
  private readonly agent: Agent;

  constructor(
    private readonly host: string,
    private readonly port: number,
    maxSockets: number,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets });
  }

  /** POSTs `body`; rejects on a connection error or when no full answer came within `timeoutMs`. */
  post(path: string, headers: Record<string, string>, body: string, timeoutMs = 10_000): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      const sentAt = performance.now();
      const req = request(
        { host: this.host, port: this.port, method: 'POST', path, agent: this.agent, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const doneAt = performance.now();
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), sentAt, doneAt, ms: doneAt - sentAt });
          });
          res.on('error', (err) => {
            clearTimeout(timer);
            reject(err);
          });
        },
      );
      const timer = setTimeout(() => req.destroy(new Error(`no answer from ${path} within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
