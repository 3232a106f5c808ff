/**
 * The part of autocannon's programmatic API the benchmark uses (the package ships no types and
 * @types/autocannon is not a dependency). Shapes follow autocannon 9's lib/run.js.
 */
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  namespace autocannon {
    interface Options {
      url: string;
      method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
      headers?: Record<string, string>;
      body?: string | Buffer;
      /** Requests sent in turn on each connection (each overrides the defaults above). */
      requests?: { method?: 'GET' | 'POST' | 'PUT' | 'DELETE'; path?: string; body?: string; headers?: Record<string, string> }[];
      connections?: number;
      pipelining?: number;
      /** Seconds. */
      duration?: number;
      /** Seconds before a request counts as timed out (and as an error). */
      timeout?: number;
      /** Requests per second over all connections (each connection gets its share per second). */
      overallRate?: number;
      /** Called with each response body; `false` counts a mismatch. */
      verifyBody?: (body: string) => boolean;
    }

    interface Histogram {
      average: number;
      mean: number;
      stddev: number;
      min: number;
      max: number;
      p50: number;
      p99: number;
      total: number;
    }

    interface Result {
      /** Seconds. */
      duration: number;
      /** Connection errors plus timeouts. */
      errors: number;
      timeouts: number;
      mismatches: number;
      non2xx: number;
      resets: number;
      '2xx': number;
      statusCodeStats: Record<string, { count: number }>;
      /** Whole milliseconds (autocannon's histogram has a 1 ms floor). */
      latency: Histogram;
      requests: Histogram & { sent: number };
    }

    interface Instance extends EventEmitter {
      stop(): void;
    }
  }

  function autocannon(options: autocannon.Options, done: (err: Error | null, result: autocannon.Result) => void): autocannon.Instance;
  export = autocannon;
}
