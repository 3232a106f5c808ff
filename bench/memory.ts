/**
 * Memory of one instance as deployed: `ARMALO_ROLE=all`, the example policy, Slack and Teams
 * configured against local fakes. Starts it in a child process and prints its RSS (and V8 heap)
 * after start, after a decision load (1,000 req/s) with contain/restore cycles beside it, and
 * after an idle second; a bare node:http child (same runtime) gives the floor.
 *
 *   npx tsx bench/memory.ts              # 10 s of load
 *   BENCH_DURATION=30 npx tsx bench/memory.ts
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { createDb, ensureDatabaseExists } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrator.js';
import { startChild, type ServerChild } from './lib/children.js';
import { BENCH_POLICY_NOTE, INSTANCE_NODE_FLAGS, INSTANCE_RUNTIME, configuredInstanceEnv, mb, prepareInstances, writeBenchPolicy } from './lib/instance.js';
import { table } from './lib/stats.js';
import { deleteRedisPrefix } from './lib/redis-cleanup.js';

const HOST = '127.0.0.1';
const PG_BASE = `postgres://postgres@${HOST}:5432`;
const REDIS_URL = `redis://${HOST}:6379`;
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const GOAL_MB = 180;
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

const AGENT = {
  name: 'Memory bench bot',
  owner: 'bench@example.com',
  riskTier: 'medium',
  grants: [{ scope: 'payments:transfer', constraints: { maxAmount: 10000 } }, { scope: 'crm:read' }, { scope: 'crm:write' }],
};

async function main(): Promise<void> {
  const runId = randomBytes(5).toString('hex');
  const dbName = `armalo_bench_mem_${runId}`;
  const queuePrefix = `armalo-bench-mem-${runId}`;
  const databaseUrl = `${PG_BASE}/${dbName}`;
  const token = `bench_${randomBytes(24).toString('hex')}`;
  const tempDir = mkdtempSync(path.join(tmpdir(), 'armalo-bench-mem-'));
  const children: ServerChild[] = [];
  try {
    await ensureDatabaseExists(databaseUrl);
    const db = createDb(databaseUrl, { max: 1 });
    const { error } = await migrateToLatest(db).finally(() => db.destroy());
    if (error) throw error;

    const bare = await startChild('bare', here('./servers/bare-server.ts'), { BODY: '{"decision":"allow"}' });
    children.push(bare);
    const fake = await startChild('fake-slack', here('./servers/fake-slack-server.ts'), { HOST });
    children.push(fake);
    const env = configuredInstanceEnv({ databaseUrl, redisUrl: REDIS_URL, host: HOST, queuePrefix, apiToken: token, policyFile: writeBenchPolicy(tempDir), fakeUrl: `http://${HOST}:${fake.port}` });
    const { compiled } = await prepareInstances();
    const app = await startChild('app', here('./servers/app-server.ts'), env, { compiled, execArgv: INSTANCE_NODE_FLAGS });
    children.push(app);
    const url = `http://${HOST}:${app.port}`;
    const rows: string[][] = [];
    const row = async (stage: string, c: ServerChild) => {
      const u = await c.cpuUsage();
      rows.push([stage, mb(u.rss), mb(u.heapUsed)]);
      return u.rss;
    };
    await row('bare node:http, started', bare);
    await new Promise((r) => setTimeout(r, 1000));
    await row('app, started', app);

    const call = async (method: string, p: string, body: unknown) => {
      const res = await fetch(`${url}${p}`, { method, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });
      if (res.status >= 300) throw new Error(`${method} ${p}: ${res.status} ${await res.text()}`);
    };
    for (let i = 0; i < 20; i++) await call('PUT', `/v1/agents/mem-${i}`, AGENT);
    // prom-client resets the event-loop delay histogram at each scrape: this one drops the start-up.
    const scrape = () => fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) }).then((r) => r.text());
    const metricsBefore = await scrape();

    // Contain/restore cycles beside the decision load: incident notices go through the worker.
    let cycling = true;
    const cycles = (async () => {
      for (let i = 0; cycling; i = (i + 1) % 20) {
        await call('POST', `/v1/agents/mem-${i}/actions`, { action: 'contain', reason: 'memory bench' });
        await call('POST', `/v1/agents/mem-${i}/actions`, { action: 'restore', reason: 'memory bench' });
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    const requests = [
      { agentId: 'mem-1', action: 'crm:read' },
      { agentId: 'mem-2', action: 'payments:transfer', context: { amount: 500 } },
    ].map((b) => ({ method: 'POST' as const, path: '/v1/decisions', body: JSON.stringify(b) }));
    const result = await new Promise<autocannon.Result>((resolve, reject) =>
      autocannon(
        { url, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, requests, connections: 10, overallRate: 1000, duration: DURATION },
        (err, r) => (err ? reject(err) : resolve(r)),
      ),
    );
    cycling = false;
    await cycles;
    const afterLoad = await row(`app, after ${DURATION} s at 1,000 decisions/s`, app);
    await new Promise((r) => setTimeout(r, 1000));
    const idle = await row('app, 1 s later', app);

    // The default metrics: event-loop delay since start, and GC pauses by kind.
    const metricsText = await scrape();
    const valueIn = (text: string, name: string) => Number(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN) * 1000;
    // Counters since start: the difference over the load.
    const gauge = (name: string) => valueIn(metricsText, name) - (name.includes('_gc_') ? valueIn(metricsBefore, name) : 0);
    console.log(`event-loop delay during the load (default metrics; includes their 10 ms timer resolution), ms: p50 ${gauge('armalo_nodejs_eventloop_lag_p50_seconds').toFixed(2)}  p99 ${gauge('armalo_nodejs_eventloop_lag_p99_seconds').toFixed(2)}  max ${gauge('armalo_nodejs_eventloop_lag_max_seconds').toFixed(2)}`);
    for (const kind of ['minor', 'major', 'incremental']) {
      const sum = gauge(`armalo_nodejs_gc_duration_seconds_sum\\{kind="${kind}"\\}`);
      const count = gauge(`armalo_nodejs_gc_duration_seconds_count\\{kind="${kind}"\\}`) / 1000;
      if (count > 0) console.log(`GC ${kind}: ${count} pause(s), ${sum.toFixed(0)} ms in all, mean ${(sum / count).toFixed(2)} ms`);
    }
    console.log(`node ${process.version}, ${cpus().length} CPU(s), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${BENCH_POLICY_NOTE}; instance ${INSTANCE_RUNTIME}, node flags ${INSTANCE_NODE_FLAGS.join(' ') || '(none)'}`);
    console.log(`decisions: ${result['2xx']} 2xx, ${result.non2xx} non-2xx, ${result.errors} errors`);
    console.log(table([['stage', 'RSS MB', 'heap MB']], rows));
    const worst = Math.max(afterLoad, idle);
    console.log(`goal "RSS per instance after the run <= ${GOAL_MB} MB": ${worst / 1024 / 1024 <= GOAL_MB ? 'PASS' : 'MISS'} (${mb(worst)} MB)`);
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    const admin = new pg.Client({ connectionString: `${PG_BASE}/postgres` });
    await admin.connect();
    await admin.query(`drop database if exists "${dbName}" with (force)`).finally(() => admin.end());
    // The instances' queues and job records stay in Redis otherwise, one set per run.
    await deleteRedisPrefix(REDIS_URL, queuePrefix).catch((err: unknown) => console.error(`Redis keys under ${queuePrefix} not deleted: ${String(err)}`));
    rmSync(tempDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`memory bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
