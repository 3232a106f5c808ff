/**
 * Child process: a lean fixed-rate load generator for latency at a fixed request rate. It keeps
 * `connections` keep-alive sockets open, sends the same pre-built request on the next free socket
 * at a steady schedule (`rate` per second), reads each answer with a minimal HTTP/1.1 reader
 * (status line, content-length, body) and records how long it took.
 *
 * Why not autocannon here: at 1,000 requests a second, autocannon's own event loop (request
 * objects, its parser, its histograms, in the process that also runs the benchmark) stalls for
 * milliseconds now and then, and a stall while an answer is waiting counts as the server's latency.
 * This probe does nothing per request but a socket write, a buffer scan and one number stored, in a
 * process of its own. Both servers are measured with it in the same run, so the bare server's p99
 * is still the floor this machine sets.
 *
 * Latency is counted from the request's write to its answer's last byte, as autocannon counts it.
 * The schedule is kept on a 1 ms timer, so a request may be written up to about a millisecond after
 * it was due (`sendLagP99`, the probe's own lateness, not counted). A request that was due while
 * the server held every socket counts from when it was due instead, so a server stall that makes
 * requests queue is not hidden by the wait for a socket (no coordinated omission); such requests
 * are counted (`blocked`).
 */
import { connect, type Socket } from 'node:net';
import { getPriority, setPriority } from 'node:os';

export interface ProbeRequest {
  host: string;
  port: number;
  path: string;
  headers: Record<string, string>;
  body: string;
  rate: number;
  connections: number;
  seconds: number;
  /** Answers of the first this many seconds are not counted (the sockets open, the server warms up). */
  skipSeconds: number;
  /** A substring every answer's body must contain (else it counts as a mismatch). */
  expect: string;
}

export interface ProbeResult {
  sent: number;
  answered: number;
  /** Latencies counted (after the skipped start), ms: from the request's write (from when it was due, for a request that waited for a socket) to its answer's last byte. */
  latencies: number[];
  /** How late requests were written after they were due, p99, ms (the probe's 1 ms timer, or every socket busy). */
  sendLagP99: number;
  /** Requests that were due while the server held every socket (counted from when they were due). */
  blocked: number;
  /** The probe's own longest pause between two of its 1 ms ticks, ms: a pause of the probe (the machine gave its core to others) delays reading answers too, and counts as server latency. */
  tickGapMax: number;
  /** The probe's scheduling priority (-10 when it could raise it, 0 otherwise). */
  priority: number;
  non2xx: number;
  mismatches: number;
  errors: number;
}

interface Conn {
  socket: Socket;
  busy: boolean;
  /** When the request on this socket was written (performance.now()). */
  sentAt: number;
  buffer: Buffer;
}

const HEADER_END = Buffer.from('\r\n\r\n');

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

/** Ends the run in progress early (its requests in flight are still answered and counted). */
let stopCurrent: (() => void) | undefined;

export function runProbe(req: ProbeRequest): Promise<ProbeResult> {
  const head = [`POST ${req.path} HTTP/1.1`, `host: ${req.host}:${req.port}`, 'connection: keep-alive', ...Object.entries(req.headers).map(([k, v]) => `${k}: ${v}`), `content-length: ${Buffer.byteLength(req.body)}`].join('\r\n');
  const wire = Buffer.from(`${head}\r\n\r\n${req.body}`);
  const result: ProbeResult = { sent: 0, answered: 0, latencies: [], sendLagP99: 0, blocked: 0, tickGapMax: 0, priority: getPriority(), non2xx: 0, mismatches: 0, errors: 0 };
  const lags: number[] = [];
  const conns: Conn[] = [];
  const free: Conn[] = [];
  const interval = 1000 / req.rate;

  return new Promise<ProbeResult>((resolve, reject) => {
    let started = 0;
    let countFrom = 0;
    let endAt = 0;
    let next = 0;
    let timer: NodeJS.Timeout | undefined;
    let finished = false;

    stopCurrent = () => {
      const now = performance.now();
      if (endAt === 0 || now < endAt) endAt = now;
      if (conns.every((x) => !x.busy)) finish();
    };
    // A server that stops answering must not hang the benchmark.
    const guard = setTimeout(() => finish(new Error(`the run did not end within ${req.seconds + 15} s (answers missing)`)), (req.seconds + 15) * 1000);
    const finish = (err?: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(guard);
      if (timer) clearInterval(timer);
      for (const c of conns) c.socket.destroy();
      if (err) return reject(err);
      lags.sort((a, b) => a - b);
      result.sendLagP99 = percentile(lags, 0.99);
      resolve(result);
    };

    const answered = (c: Conn, status: number, body: Buffer) => {
      const now = performance.now();
      c.busy = false;
      result.answered++;
      if (status < 200 || status > 299) result.non2xx++;
      else if (!body.includes(req.expect)) result.mismatches++;
      if (c.sentAt >= countFrom) result.latencies.push(now - c.sentAt);
      free.push(c);
      if (now >= endAt && conns.every((x) => !x.busy)) finish();
    };

    const onData = (c: Conn, chunk: Buffer) => {
      c.buffer = c.buffer.length ? Buffer.concat([c.buffer, chunk]) : chunk;
      const end = c.buffer.indexOf(HEADER_END);
      if (end === -1) return;
      const headText = c.buffer.subarray(0, end).toString('latin1');
      const status = Number(headText.slice(9, 12));
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(headText);
      if (!m) return finish(new Error(`an answer without content-length: ${headText.slice(0, 200)}`));
      const total = end + 4 + Number(m[1]);
      if (c.buffer.length < total) return;
      const body = c.buffer.subarray(end + 4, total);
      c.buffer = c.buffer.length > total ? c.buffer.subarray(total) : Buffer.alloc(0);
      answered(c, status, body);
    };

    /** A request was due while every socket was busy: until the schedule catches up, requests count from when they were due. */
    let starved = false;
    let lastTick = 0;
    const tick = () => {
      const now = performance.now();
      if (lastTick > 0 && now - lastTick > result.tickGapMax) result.tickGapMax = now - lastTick;
      lastTick = now;
      while (next <= now && next < endAt) {
        const c = free.pop();
        if (!c) {
          starved = true; // every socket is busy: the request waits for one
          break;
        }
        c.busy = true;
        // A request that waited for a socket counts from when it was due: the server held every
        // socket that long, and that wait is latency a client would see (no coordinated omission).
        c.sentAt = starved ? next : now;
        if (starved) result.blocked++;
        lags.push(now - next);
        result.sent++;
        c.socket.write(wire);
        next += interval;
      }
      if (next > now) starved = false;
      if (now >= endAt && conns.every((x) => !x.busy)) finish();
    };

    let open = 0;
    for (let i = 0; i < req.connections; i++) {
      const socket = connect({ host: req.host, port: req.port, noDelay: true });
      const c: Conn = { socket, busy: false, sentAt: 0, buffer: Buffer.alloc(0) };
      conns.push(c);
      socket.on('data', (chunk: Buffer) => onData(c, chunk));
      socket.on('error', (err) => {
        result.errors++;
        finish(err);
      });
      socket.on('close', () => {
        if (!finished) finish(new Error('the server closed a connection during the run'));
      });
      socket.once('connect', () => {
        free.push(c);
        if (++open === req.connections) {
          started = performance.now();
          countFrom = started + req.skipSeconds * 1000;
          endAt = started + req.seconds * 1000;
          next = started;
          timer = setInterval(tick, 1);
          tick();
        }
      });
    }
  });
}

// As a child (forked by the benchmark): one run per message, the result sent back.
if (process.send) {
  // Ahead of the servers it measures where the system allows it (root, or CAP_SYS_NICE): a probe
  // that waits for a core delays reading answers, and that wait would count as server latency.
  // It takes nothing from the servers' share: the probe needs a few percent of one core.
  try {
    setPriority(-10);
  } catch {
    // Not permitted: the probe runs at normal priority; its pauses show in `tickGapMax`.
  }
  process.on('message', (msg: unknown) => {
    if ((msg as { probeStop?: boolean }).probeStop) return stopCurrent?.();
    const request = (msg as { probe?: ProbeRequest }).probe;
    if (!request) return;
    runProbe(request).then(
      (r) => process.send!({ probeResult: r }),
      (err: unknown) => process.send!({ probeError: err instanceof Error ? err.message : String(err) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}
