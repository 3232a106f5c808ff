import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
}

export function createMetrics(collect: { queueCounts?: () => Promise<Record<string, Record<string, number>>>; outboxPending?: () => Promise<number>; outboxParked?: () => Promise<number>; viewFresh?: () => boolean; policyHash?: () => string } = {}): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'armalo_' });
  const metrics: Metrics = {
    registry,
    httpRequests: new Counter({
      name: 'armalo_http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'armalo_http_request_duration_seconds',
      help: 'HTTP request latency by method and route',
      labelNames: ['method', 'route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    decisions: new Counter({
      name: 'armalo_decisions_total',
      help: 'Runtime decisions by outcome',
      labelNames: ['decision'],
      registers: [registry],
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
  };
  return metrics;
}
