/**
 * What tracing costs on the decision path: POST /v1/decisions at full speed against the service with
 * tracing off; on with every decision traced (the default; spans exported over OTLP/HTTP to a local
 * sink); that with 10% of traces sampled; and on with ARMALO_TRACE_DECISIONS=traced (a decision is
 * traced only when its caller sends a traceparent, which autocannon does not). In the same run, alternating rounds so that the
 * machine's other load falls on every variant alike. Servers run in child processes
 * (bench/servers/traced-app-server.ts); autocannon runs here. `npm run bench:tracing`.
 * BENCH_ROUNDS, BENCH_DURATION, BENCH_WARMUP (seconds) tune it.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { createDb, ensureDatabaseExists } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrator.js';
import { ROOT, appEnv, startChild } from './lib/children.js';
import { fmtInt, fmtMs, median, table } from './lib/stats.js';
import { deleteRedisPrefix } from './lib/redis-cleanup.js';

// Only ever local services: this script creates and force-drops a database.
const HOST = '127.0.0.1';
const PG_BASE = `postgres://postgres@${HOST}:5432`;
const REDIS_URL = `redis://${HOST}:6379`;
const CONNECTIONS = 32;

function intFromEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
  return n;
}
const ROUNDS = intFromEnv('BENCH_ROUNDS', 3, 1, 20);
const DURATION = intFromEnv('BENCH_DURATION', 5, 1, 120);
const WARMUP = intFromEnv('BENCH_WARMUP', 2, 0, 60);

interface Variant {
  name: string;
  env: (sink: string) => Record<string, string>;
}
const VARIANTS: Variant[] = [
  { name: 'tracing off', env: () => ({}) },
  { name: 'on, every decision (default)', env: (sink) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: sink }) },
  { name: 'on, every decision, 10% sampled', env: (sink) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: sink, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' }) },
  // Decisions without a caller's traceparent are not traced (autocannon sends none).
  { name: 'on, ARMALO_TRACE_DECISIONS=traced', env: (sink) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: sink, ARMALO_TRACE_DECISIONS: 'traced' }) },
];

/** A stand-in collector: accepts OTLP/HTTP exports and counts their bytes. */
async function startSink(): Promise<{ url: string; bytes: () => number; close: () => Promise<void> }> {
  let bytes = 0;
  const server = createServer((req, res) => {
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  return {
    url: `http://${HOST}:${(server.address() as AddressInfo).port}`,
    bytes: () => bytes,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

async function load(url: string, token: string, seconds: number): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `${url}/v1/decisions`,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ agentId: 'bench-bot', action: 'crm:write' }),
        connections: CONNECTIONS,
        pipelining: 1,
        duration: seconds,
        timeout: 10,
      },
      (err, r) => (err ? reject(err) : resolve({ rps: r['2xx'] / r.duration, p50: r.latency.p50, p99: r.latency.p99, errors: r.non2xx + r.errors + r.timeouts })),
    );
  });
}

async function main(): Promise<void> {
  const suffix = randomBytes(4).toString('hex');
  const dbName = `armalo_bench_tracing_${suffix}`;
  const databaseUrl = `${PG_BASE}/${dbName}`;
  const queuePrefix = `bench-tracing-${suffix}`;
  const token = `tok_bench_${randomBytes(12).toString('hex')}`;
  await ensureDatabaseExists(databaseUrl);
  const db = createDb(databaseUrl);
  await migrateToLatest(db);
  await db.destroy();
  const sink = await startSink();
  const results = new Map<string, { rps: number[]; p50: number[]; p99: number[]; errors: number; bytesPerRequest: number[] }>(VARIANTS.map((v) => [v.name, { rps: [], p50: [], p99: [], errors: 0, bytesPerRequest: [] }]));
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const variant of VARIANTS) {
        const env = { ...appEnv({ databaseUrl, redisUrl: REDIS_URL, host: HOST, queuePrefix, apiToken: token }, 'all'), ...variant.env(sink.url), OTEL_BSP_SCHEDULE_DELAY: '1000' };
        const child = await startChild(`${variant.name} #${round}`, path.join(ROOT, 'bench/servers/traced-app-server.ts'), env, { startTimeoutMs: 90_000 });
        try {
          const url = `http://${HOST}:${child.port}`;
          const put = await fetch(`${url}/v1/agents/bench-bot`, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ name: 'Bench bot', owner: 'bench@example.com', riskTier: 'low', grants: [{ scope: 'crm:write' }] }) });
          if (put.status >= 300) throw new Error(`PUT /v1/agents/bench-bot: HTTP ${put.status}`);
          if (WARMUP > 0) await load(url, token, WARMUP);
          const before = sink.bytes();
          const r = await load(url, token, DURATION);
          await child.stop(); // flushes the spans still buffered
          const row = results.get(variant.name)!;
          row.rps.push(r.rps);
          row.p50.push(r.p50);
          row.p99.push(r.p99);
          row.errors += r.errors;
          row.bytesPerRequest.push((sink.bytes() - before) / Math.max(1, r.rps * DURATION));
        } finally {
          await child.stop();
        }
      }
    }
  } finally {
    await sink.close();
    await deleteRedisPrefix(REDIS_URL, queuePrefix).catch(() => undefined);
    const admin = new pg.Client({ connectionString: `${PG_BASE}/postgres` });
    await admin.connect();
    await admin.query(`drop database if exists "${dbName}" with (force)`);
    await admin.end();
  }
  const off = median(results.get('tracing off')!.rps);
  console.log(`\nPOST /v1/decisions, ${CONNECTIONS} connections, ${ROUNDS} round(s) of ${DURATION} s per variant (medians), ${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)}\n`);
  console.log(
    table(
      [['variant', 'req/s', 'vs off', 'p50 ms', 'p99 ms', 'OTLP bytes/req', 'errors']],
      VARIANTS.map((v) => {
        const r = results.get(v.name)!;
        return [v.name, fmtInt(median(r.rps)), `${((median(r.rps) / off) * 100).toFixed(0)}%`, fmtMs(median(r.p50)), fmtMs(median(r.p99)), fmtInt(median(r.bytesPerRequest)), String(r.errors)];
      }),
    ),
  );
}

await main();
