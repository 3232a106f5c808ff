import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

type Labels = Record<string, string>;

/**
 * One labelled series of a counter, for the hot path: counting is one addition on a plain object,
 * and the count goes into the prom-client counter when it is read (a scrape, `get()`). prom-client's
 * own `inc(labels)` hashes the labels object on every call, which the decision path paid per request.
 */
export class CounterSeries {
  pending = 0;
  constructor(readonly labels: Labels) {}
  inc(): void {
    this.pending++;
  }
}

/** One labelled series of a histogram, for the hot path: buckets counted here, added to the histogram when it is read. */
export class HistogramSeries {
  pendingCount = 0;
  pendingSum = 0;
  readonly pendingBuckets: number[];
  constructor(
    readonly labels: Labels,
    private readonly bounds: readonly number[],
  ) {
    this.pendingBuckets = new Array<number>(bounds.length).fill(0);
  }
  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) this.pendingBuckets[i]!++;
    this.pendingCount++;
    this.pendingSum += value;
  }
}

function flushCounter(counter: Counter<string>, series: Iterable<CounterSeries>): void {
  for (const s of series) {
    if (s.pending === 0) continue;
    const n = s.pending;
    s.pending = 0;
    counter.inc(s.labels, n);
  }
}

/** prom-client 15 keeps a histogram's series as `{labels, bucketValues: {[upperBound]: n}, sum, count}` (not in its typings). */
interface HistogramEntry {
  labels: Labels;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

function flushHistogram(histogram: Histogram<string>, bounds: readonly number[], series: Iterable<HistogramSeries>): void {
  const internal = histogram as unknown as { hashMap: Record<string, HistogramEntry> };
  const keys = (labels: Labels) => Object.keys(labels);
  const sameLabels = (a: Labels, b: Labels) => keys(a).length === keys(b).length && keys(a).every((k) => a[k] === b[k]);
  const entryOf = (labels: Labels) => Object.values(internal.hashMap).find((e) => sameLabels(e.labels, labels));
  for (const s of series) {
    if (s.pendingCount === 0) continue;
    let entry = entryOf(s.labels);
    if (!entry) {
      histogram.zero(s.labels);
      entry = entryOf(s.labels);
      if (!entry) throw new Error(`prom-client did not keep the series ${JSON.stringify(s.labels)} of ${(histogram as unknown as { name: string }).name}`);
    }
    for (let i = 0; i < bounds.length; i++) {
      entry.bucketValues[bounds[i]!] = (entry.bucketValues[bounds[i]!] ?? 0) + s.pendingBuckets[i]!;
      s.pendingBuckets[i] = 0;
    }
    entry.count += s.pendingCount;
    entry.sum += s.pendingSum;
    s.pendingCount = 0;
    s.pendingSum = 0;
  }
}

/** The series an HTTP request is counted in: `armalo_http_requests_total` and `armalo_http_request_duration_seconds`. */
export interface HttpSeries {
  requests: CounterSeries;
  duration: HistogramSeries;
}

const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] as const;

/** Prometheus metrics of one app instance (its own registry, so two instances in one process don't clash). */
export interface Metrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
  decisions: Counter<'decision'>;
  /** Decisions that failed closed because something went wrong while deciding (never a 500). */
  decisionErrors: Counter<'reason'>;
  eventDeliveries: Counter<'outcome'>;
  jobsFailed: Counter<'queue'>;
  queueDepth: Gauge<'queue' | 'state'>;
  outboxPending: Gauge;
  outboxParked: Gauge;
  viewFresh: Gauge;
  /** `armalo_policy_info{hash}` = 1: the policy this replica runs (one series, the current hash). */
  policyInfo: Gauge<'hash'>;
  /** The hot path's series of `httpRequests` and `httpDuration` for one method, route and status (created once, then reused). */
  http(method: string, route: string, status: number): HttpSeries;
  /** The hot path's series of `decisions` for one outcome. */
  decided(outcome: string): CounterSeries;
}

export function createMetrics(collect: { queueCounts?: () => Promise<Record<string, Record<string, number>>>; outboxPending?: () => Promise<number>; outboxParked?: () => Promise<number>; viewFresh?: () => boolean; policyHash?: () => string } = {}): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'armalo_' });
  // method → route → status → series: three lookups and no string building per request. The
  // duration series is one per method and route, shared by its statuses (it has no status label).
  const httpSeries = new Map<string, Map<string, { duration: HistogramSeries; byStatus: Map<number, HttpSeries> }>>();
  const allRequestSeries: CounterSeries[] = [];
  const allDurationSeries: HistogramSeries[] = [];
  const decisionSeries = new Map<string, CounterSeries>();
  const metrics: Metrics = {
    registry,
    httpRequests: new Counter({
      name: 'armalo_http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
      collect() {
        flushCounter(this, allRequestSeries);
      },
    }),
    httpDuration: new Histogram({
      name: 'armalo_http_request_duration_seconds',
      help: 'HTTP request latency by method and route',
      labelNames: ['method', 'route'],
      buckets: [...HTTP_BUCKETS],
      registers: [registry],
      collect() {
        flushHistogram(this, HTTP_BUCKETS, allDurationSeries);
      },
    }),
    decisions: new Counter({
      name: 'armalo_decisions_total',
      help: 'Runtime decisions by outcome',
      labelNames: ['decision'],
      registers: [registry],
      collect() {
        flushCounter(this, decisionSeries.values());
      },
    }),
    decisionErrors: new Counter({
      name: 'armalo_decision_errors_total',
      help: 'Decisions answered deny because deciding failed (reason: view_stale when Postgres could not be asked, decision_error otherwise)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    eventDeliveries: new Counter({
      name: 'armalo_event_deliveries_total',
      help: 'Outbound event webhook deliveries by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    jobsFailed: new Counter({
      name: 'armalo_jobs_failed_total',
      help: 'Jobs that failed for good (retries exhausted or not retryable)',
      labelNames: ['queue'],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'armalo_queue_jobs',
      help: 'Jobs in each BullMQ queue by state',
      labelNames: ['queue', 'state'],
      registers: [registry],
      async collect() {
        if (!collect.queueCounts) return;
        try {
          const counts = await collect.queueCounts();
          for (const [queue, byState] of Object.entries(counts)) {
            for (const [state, n] of Object.entries(byState)) this.set({ queue, state }, n);
          }
        } catch {
          // Redis unreachable: report nothing rather than stale numbers.
          this.reset();
        }
      },
    }),
    outboxPending: new Gauge({
      name: 'armalo_outbox_pending',
      help: 'Outbox rows committed but not yet handed to the queue',
      registers: [registry],
      async collect() {
        if (!collect.outboxPending) return;
        try {
          this.set(await collect.outboxPending());
        } catch {
          this.reset();
        }
      },
    }),
    outboxParked: new Gauge({
      name: 'armalo_outbox_parked',
      help: 'Outbox rows parked after repeated failures (kept in Postgres, no longer retried): each needs a look',
      registers: [registry],
      async collect() {
        if (!collect.outboxParked) return;
        try {
          this.set(await collect.outboxParked());
        } catch {
          this.reset();
        }
      },
    }),
    viewFresh: new Gauge({
      name: 'armalo_permission_view_fresh',
      help: '1 when this replica can vouch for its permission view, 0 when it fails closed',
      registers: [registry],
      collect() {
        if (collect.viewFresh) this.set(collect.viewFresh() ? 1 : 0);
      },
    }),
    policyInfo: new Gauge({
      name: 'armalo_policy_info',
      help: 'The policy this replica runs: 1 for its sha256 hash (the same value /readyz reports as policyHash)',
      labelNames: ['hash'],
      registers: [registry],
      collect() {
        if (!collect.policyHash) return;
        // Read at scrape time: after a reload the old hash's series is gone, not left at 1.
        this.reset();
        this.set({ hash: collect.policyHash() }, 1);
      },
    }),
    http(method, route, status) {
      let byRoute = httpSeries.get(method);
      if (!byRoute) httpSeries.set(method, (byRoute = new Map()));
      let forRoute = byRoute.get(route);
      if (!forRoute) {
        forRoute = { duration: new HistogramSeries({ method, route }, HTTP_BUCKETS), byStatus: new Map() };
        byRoute.set(route, forRoute);
        allDurationSeries.push(forRoute.duration);
      }
      let series = forRoute.byStatus.get(status);
      if (!series) {
        series = { requests: new CounterSeries({ method, route, status: String(status) }), duration: forRoute.duration };
        forRoute.byStatus.set(status, series);
        allRequestSeries.push(series.requests);
      }
      return series;
    },
    decided(outcome) {
      let series = decisionSeries.get(outcome);
      if (!series) decisionSeries.set(outcome, (series = new CounterSeries({ decision: outcome })));
      return series;
    },
  };
  return metrics;
}
