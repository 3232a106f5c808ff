import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/**
 * How long a request may take to arrive, per route kind. Node's own `server.requestTimeout` is one
 * value for every request: 60 s cut off a 100,000-agent import (a streamed NDJSON body that takes
 * minutes to send), and a value long enough for the import would let a slow client hold any
 * socket that long. So Node's is off and this watcher enforces a deadline per request: a request
 * whose body is still arriving past its deadline gets 408 (if nothing was answered yet) and its
 * socket is closed. Headers stay under Node's `headersTimeout`.
 *
 * Cost on the hot path: a request is in the watch from its start until its answer (a Map set and
 * delete; Node emits the request before it parses a body that came in the same packet, so nearly
 * every POST is watched briefly). The sweep runs once a second, unref'd, only while any is watched.
 */
export interface BodyDeadlines {
  /** Every request's body, from the start of the request (default 60 s). */
  bodyMs: number;
  /** Routes that stream their body (the import), from the start of the request (default 15 min). */
  streamBodyMs: number;
  /** How often the watcher looks (default 1 s). */
  sweepMs: number;
}

export const DEFAULT_BODY_DEADLINES: BodyDeadlines = { bodyMs: 60_000, streamBodyMs: 15 * 60_000, sweepMs: 1000 };

interface Watched {
  res: ServerResponse;
  startedAt: number;
  limitMs: number;
}

export class BodyDeadlineWatcher {
  private readonly watched = new Map<IncomingMessage, Watched>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly deadlines: BodyDeadlines = DEFAULT_BODY_DEADLINES) {}

  /** Starts watching a request whose body has not fully arrived, with the default deadline. */
  watch(req: IncomingMessage, res: ServerResponse, startedAt: number): void {
    if (req.complete) return;
    this.watched.set(req, { res, startedAt, limitMs: this.deadlines.bodyMs });
    this.timer ??= setInterval(() => this.sweep(), this.deadlines.sweepMs).unref();
  }

  /** The request was answered by the server's handler: nothing to watch any more. */
  forget(req: IncomingMessage): void {
    this.watched.delete(req);
  }

  /** The matched route streams its body: it gets the longer deadline. */
  streaming(req: IncomingMessage): void {
    const w = this.watched.get(req);
    if (w) w.limitMs = this.deadlines.streamBodyMs;
  }

  private sweep(now = performance.now()): void {
    for (const [req, w] of this.watched) {
      if (req.complete || req.destroyed || w.res.writableFinished) {
        this.watched.delete(req);
        continue;
      }
      if (now - w.startedAt <= w.limitMs) continue;
      this.watched.delete(req);
      const limit = Math.round(w.limitMs / 1000);
      if (!w.res.headersSent) {
        const body = JSON.stringify({ error: { code: 'invalid_input', message: `the request did not arrive within ${limit} s; send it faster or split it` } });
        w.res.writeHead(408, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
        w.res.end(body, () => req.socket.destroy());
      } else {
        req.socket.destroy();
      }
    }
    if (this.watched.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Turns Node's single request timeout off: this watcher sets deadlines per request instead. */
  install(server: Server): void {
    server.requestTimeout = 0;
    server.on('close', () => {
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
      this.watched.clear();
    });
  }
}
