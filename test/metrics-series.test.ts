import { describe, expect, it } from 'vitest';
import { createMetrics } from '../src/observability/metrics.js';

/** The hot path counts in plain series; a scrape must show exactly what prom-client's own calls would have. */
describe('hot-path metric series', () => {
  it('a scrape shows every request counted, by status, with its duration in the right buckets and the exact sum', async () => {
    const metrics = createMetrics();
    const ok = metrics.http('POST', '/v1/decisions', 200);
    expect(metrics.http('POST', '/v1/decisions', 200)).toBe(ok);
    ok.requests.inc();
    ok.duration.observe(0.0004);
    ok.requests.inc();
    ok.duration.observe(0.003);
    const bad = metrics.http('POST', '/v1/decisions', 400);
    bad.requests.inc();
    bad.duration.observe(7);
    metrics.decided('allow').inc();
    metrics.decided('allow').inc();
    metrics.decided('deny').inc();

    let text = await metrics.registry.metrics();
    expect(text).toMatch(/armalo_http_requests_total\{method="POST",route="\/v1\/decisions",status="200"\} 2\n/);
    expect(text).toMatch(/armalo_http_requests_total\{method="POST",route="\/v1\/decisions",status="400"\} 1\n/);
    expect(text).toMatch(/armalo_http_request_duration_seconds_bucket\{le="0.0005",method="POST",route="\/v1\/decisions"\} 1\n/);
    expect(text).toMatch(/armalo_http_request_duration_seconds_bucket\{le="0.005",method="POST",route="\/v1\/decisions"\} 2\n/);
    expect(text).toMatch(/armalo_http_request_duration_seconds_bucket\{le="2.5",method="POST",route="\/v1\/decisions"\} 2\n/);
    expect(text).toMatch(/armalo_http_request_duration_seconds_bucket\{le="\+Inf",method="POST",route="\/v1\/decisions"\} 3\n/);
    expect(text).toMatch(/armalo_http_request_duration_seconds_count\{method="POST",route="\/v1\/decisions"\} 3\n/);
    const sum = Number(/armalo_http_request_duration_seconds_sum\{method="POST",route="\/v1\/decisions"\} (\S+)/.exec(text)?.[1]);
    expect(sum).toBeCloseTo(7.0034, 9);
    expect(text).toMatch(/armalo_decisions_total\{decision="allow"\} 2\n/);
    expect(text).toMatch(/armalo_decisions_total\{decision="deny"\} 1\n/);

    // Counts keep adding up across scrapes (nothing counted twice, nothing lost).
    ok.requests.inc();
    ok.duration.observe(0.0004);
    metrics.decided('deny').inc();
    text = await metrics.registry.metrics();
    expect(text).toMatch(/armalo_http_requests_total\{method="POST",route="\/v1\/decisions",status="200"\} 3\n/);
    expect(text).toMatch(/armalo_http_request_duration_seconds_bucket\{le="0.0005",method="POST",route="\/v1\/decisions"\} 2\n/);
    expect(text).toMatch(/armalo_http_request_duration_seconds_count\{method="POST",route="\/v1\/decisions"\} 4\n/);
    expect(text).toMatch(/armalo_decisions_total\{decision="deny"\} 2\n/);
    expect((await metrics.decisions.get()).values.find((v) => v.labels.decision === 'deny')?.value).toBe(2);
  });
});
