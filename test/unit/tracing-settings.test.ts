import { describe, expect, it } from 'vitest';
import { DEFAULT_SERVICE_NAME, TracingConfigError, tracingSettings } from '../../src/observability/tracing.js';

// When tracing is on, and what it says about itself (src/observability/tracing.ts): read before
// anything else starts, so it must be right without the app.
describe('tracingSettings', () => {
  it('is off without an OTLP endpoint, whatever else is set', () => {
    expect(tracingSettings({})).toBeUndefined();
    expect(tracingSettings({ OTEL_SERVICE_NAME: 'x', OTEL_EXPORTER_OTLP_HEADERS: 'a=b' })).toBeUndefined();
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: '   ' })).toBeUndefined();
  });

  it('is on with the general endpoint, spans going to its /v1/traces, as armalo-chatops', () => {
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })).toEqual({ serviceName: DEFAULT_SERVICE_NAME, decisions: 'all', endpoint: 'http://collector:4318/v1/traces' });
    expect(DEFAULT_SERVICE_NAME).toBe('armalo-chatops');
  });

  it('is on with the traces endpoint, used as given, which wins over the general one', () => {
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://tempo.example.com/otlp/v1/traces' })?.endpoint).toBe('https://tempo.example.com/otlp/v1/traces');
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://a:4318/v1/traces', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://b:4318' })?.endpoint).toBe('http://a:4318/v1/traces');
  });

  it('takes OTEL_SERVICE_NAME, and OTEL_SDK_DISABLED=true turns it off', () => {
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SERVICE_NAME: 'armalo-web' })?.serviceName).toBe('armalo-web');
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'TRUE' })).toBeUndefined();
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'false' })).toBeDefined();
  });

  it('traces every decision, or with ARMALO_TRACE_DECISIONS=traced only those whose callers trace them', () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    expect(tracingSettings(on)?.decisions).toBe('all');
    expect(tracingSettings({ ...on, ARMALO_TRACE_DECISIONS: 'traced' })?.decisions).toBe('traced');
    expect(() => tracingSettings({ ...on, ARMALO_TRACE_DECISIONS: 'yes' })).toThrow(/ARMALO_TRACE_DECISIONS must be/);
    // Without an endpoint the variable is not even read: tracing is off.
    expect(tracingSettings({ ARMALO_TRACE_DECISIONS: 'yes' })).toBeUndefined();
  });

  it('refuses an endpoint that is not an http(s) URL, naming the variable', () => {
    expect(() => tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector' })).toThrow(TracingConfigError);
    expect(() => tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
    expect(() => tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'grpc://collector:4317' })).toThrow(/OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http or https URL/);
  });

  it('never shows credentials or a query string of the endpoint (it is logged at start)', () => {
    const { endpoint } = tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://user:s3cret@ingest.example.com/v1/traces?api_key=k3y' })!;
    expect(endpoint).not.toContain('s3cret');
    expect(endpoint).not.toContain('k3y');
    expect(endpoint).toContain('ingest.example.com/v1/traces');
  });
});
