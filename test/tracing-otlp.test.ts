import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { sampleAgent, TOKEN, waitFor } from './support/app.js';
import { REDIS_URL, type TestDatabase } from './support/database.js';
import { appTest } from './support/fixture.js';
import { OtlpReceiver } from './support/otlp-receiver.js';

// The real entry point (`src/main.ts`, what `npm start` and `npm run dev` run) as a child process:
// with OTEL_EXPORTER_OTLP_ENDPOINT set it exports its spans to an OTLP/HTTP receiver; without it,
// it exports nothing and loads no OpenTelemetry SDK. test/tracing.test.ts checks the traces' shape.
const repoRoot = new URL('..', import.meta.url).pathname;
const recorder = new URL('./support/module-recorder.mjs', import.meta.url).href;

let database: TestDatabase;
let prefix: string;
const receiver = new OtlpReceiver();
const scratch = mkdtempSync(join(tmpdir(), 'armalo-otel-'));
const children: ChildProcess[] = [];

const it = appTest();
it.beforeAll(({ database: fixtureDatabase, prefix: fixturePrefix }) => {
  database = fixtureDatabase;
  prefix = fixturePrefix;
}, 60_000);
beforeAll(() => receiver.start());
afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
  }
  await receiver.stop();
  rmSync(scratch, { recursive: true, force: true });
});

interface Running {
  base: string;
  /** SIGTERM, as an orchestrator stops it; resolves to the exit code. */
  stop(): Promise<number | null>;
  /** The OpenTelemetry packages the process loaded (require or import), by package name. */
  otelModules(): string[];
}

async function startMain(name: string, env: Record<string, string>): Promise<Running> {
  const modulesFile = join(scratch, `${name}.modules`);
  const lines: Record<string, unknown>[] = [];
  const child = spawn(process.execPath, ['--import', recorder, '--import', 'tsx', 'src/main.ts'], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'test',
      DATABASE_URL: database.url,
      REDIS_URL,
      PORT: '0',
      HOST: '127.0.0.1',
      ARMALO_API_TOKENS: `platform:${TOKEN}`,
      ARMALO_QUEUE_PREFIX: prefix,
      LOG_LEVEL: 'info',
      RECORD_OTEL_MODULES: modulesFile,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // Not a log line.
      }
    }
  });
  const started = () => lines.find((l) => l.msg === 'armalo chat-ops started');
  await waitFor(() => started() !== undefined || child.exitCode !== null, 60_000, `${name}: the service to start`);
  expect(child.exitCode, `${name} exited at start`).toBeNull();
  return {
    base: `http://127.0.0.1:${String(started()!.port)}`,
    stop: () => {
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      return exited;
    },
    otelModules: () => {
      const seen = existsSync(modulesFile) ? readFileSync(modulesFile, 'utf8').split('\n').filter(Boolean) : [];
      return [...new Set(seen.map((m) => m.match(/^@opentelemetry\/[^/]+|^bullmq-otel$/)?.[0]).filter((m): m is string => !!m))].sort();
    },
  };
}

const api = (base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  fetch(base + path, { method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });

describe('tracing through the real entry point', () => {
  it('with OTEL_EXPORTER_OTLP_ENDPOINT set, the spans of a REST call reach an OTLP/HTTP receiver', async () => {
    const main = await startMain('traced', { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '200' });
    expect((await api(main.base, 'PUT', '/v1/agents/otlp-bot', sampleAgent)).status).toBeLessThan(300);
    const traceId = randomBytes(16).toString('hex');
    const res = await api(main.base, 'POST', '/v1/agents/otlp-bot/actions', { action: 'contain', reason: 'collector test' }, { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` });
    expect(res.status).toBe(201);

    const inTrace = () => receiver.spans.filter((s) => s.traceId === traceId);
    await waitFor(() => inTrace().some((s) => s.name === 'POST /v1/agents/{agentId}/actions'), 20_000, 'the request span at the receiver');
    const server = inTrace().find((s) => s.name === 'POST /v1/agents/{agentId}/actions')!;
    expect(server.service).toBe('armalo-chatops');
    expect(server.attributes['http.route']).toBe('/v1/agents/{agentId}/actions');
    // The pg instrumentation is in place in the real process too (the ESM app loads pg after it).
    await waitFor(() => inTrace().some((s) => s.name.startsWith('pg.query:')), 10_000, 'Postgres spans at the receiver');
    // ...and the relay continues the request's trace from the outbox row.
    await waitFor(() => inTrace().some((s) => s.name.startsWith('outbox relay ')), 10_000, 'the relay span at the receiver');
    // By default every decision is traced, a caller's traceparent or not.
    expect((await api(main.base, 'POST', '/v1/decisions', { agentId: 'otlp-bot', action: 'crm:write' })).status).toBe(200);
    await waitFor(() => receiver.spans.some((s) => s.name === 'POST /v1/decisions' && s.parentSpanId === undefined), 10_000, 'the decision span at the receiver');
    expect(receiver.exports.length).toBeGreaterThan(0);
    expect(main.otelModules()).toEqual(expect.arrayContaining(['@opentelemetry/sdk-trace-node', '@opentelemetry/exporter-trace-otlp-http', 'bullmq-otel']));
    expect(await main.stop()).toBe(0);
  }, 120_000);

  it('without it, the process exports nothing and loads no OpenTelemetry SDK', async () => {
    const before = receiver.exports.length;
    // OTEL_SERVICE_NAME alone does not turn tracing on.
    const main = await startMain('untraced', { OTEL_SERVICE_NAME: 'should-not-matter' });
    expect((await api(main.base, 'PUT', '/v1/agents/dark-bot', sampleAgent)).status).toBeLessThan(300);
    const res = await api(main.base, 'POST', '/v1/agents/dark-bot/actions', { action: 'contain', reason: 'no collector' }, { traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` });
    expect(res.status).toBe(201);
    // A traced process flushes its spans when it stops: after the exit, nothing can still arrive.
    expect(await main.stop()).toBe(0);
    expect(receiver.exports.length).toBe(before);
    // At most the API, which prom-client loads for its exemplars (a no-op without an SDK): no SDK,
    // no instrumentation, no exporter, no bullmq-otel.
    expect(main.otelModules().filter((m) => m !== '@opentelemetry/api')).toEqual([]);
  }, 120_000);

  it('refuses to start on an OTLP endpoint that is not a URL, naming the variable', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(1);
    expect(stderr).toContain('OTEL_EXPORTER_OTLP_ENDPOINT');
  }, 60_000);
});
