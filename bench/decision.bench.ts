/**
 * POST /v1/decisions against a bare node:http baseline, measured in the same run on the same
 * machine, then (bench/slack.ts) Slack acknowledgement latency and containment time-to-effect,
 * then (bench/approvals.ts) approval requests and their cards under Slack's posting limit, then
 * (bench/packets.ts) trust packets built over REST and asked for in Slack.
 * Servers run in child processes; the load generators (autocannon, and our own for Slack) run
 * here. See bench/README.md for what is measured, why, and how to read the tables.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createDb, ensureDatabaseExists } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrator.js';
import { ROOT, startChild, type ServerChild } from './lib/children.js';
import { Samples, fmtInt, fmtMs, median, table } from './lib/stats.js';
import { runSlackBench, slackBudgetSeconds } from './slack.js';
import { approvalsBudgetSeconds, runApprovalsBench } from './approvals.js';
import { packetsBudgetSeconds, runPacketsBench } from './packets.js';

// Only ever local services: this script creates and force-drops a database.
const HOST = '127.0.0.1';
const PG_BASE = `postgres://postgres@${HOST}:5432`;
const REDIS_URL = `redis://${HOST}:6379`;

const MAX_CONNECTIONS = 32;
const RATE = 1000;
const RATE_CONNECTIONS = 10;
const GOAL_RATIO = 0.5;
const GOAL_P99_MS = 5;

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
/** Latencies of a run's first seconds are not counted: autocannon opens its connections and warms up then. */
const SKIP = intFromEnv('BENCH_SKIP', 1, 0, 60);
const CPU_PROF = process.env.BENCH_CPU_PROF === '1';
/** Status commands per second in the Slack acknowledgement run. */
const SLACK_RATE = intFromEnv('BENCH_SLACK_RATE', 50, 1, 500);
/** Agents contained, one after the other, in the time-to-effect series. */
const TTE_AGENTS = intFromEnv('BENCH_TTE_AGENTS', 30, 1, 500);
/** Approval requests per second in the approvals run. */
const APPROVALS_RATE = intFromEnv('BENCH_APPROVALS_RATE', 5, 1, 50);
/** Seconds to wait, after the approvals run, for the cards still queued. */
const APPROVALS_DRAIN = intFromEnv('BENCH_APPROVALS_DRAIN', 60, 0, 600);
/** Trust packets measured per path (REST and Slack). */
const PACKET_RUNS = intFromEnv('BENCH_PACKET_RUNS', 5, 1, 50);

const PART_NAMES = ['decisions', 'slack', 'approvals', 'packets'] as const;
type Part = (typeof PART_NAMES)[number];

/** BENCH_ONLY: unset or `all` for every part, else one part or a comma-separated list of them. */
function partsFromEnv(): Record<Part, boolean> {
  const raw = (process.env.BENCH_ONLY ?? '').trim();
  const all = raw === '' || raw === 'all';
  const chosen = all ? [...PART_NAMES] : raw.split(',').map((p) => p.trim());
  const unknown = chosen.filter((p) => !(PART_NAMES as readonly string[]).includes(p));
  if (unknown.length || chosen.length === 0) throw new Error(`BENCH_ONLY must be ${PART_NAMES.join(', ')} (or a comma-separated list of them), or all (got "${raw}")`);
  return { decisions: chosen.includes('decisions'), slack: chosen.includes('slack'), approvals: chosen.includes('approvals'), packets: chosen.includes('packets') };
}
const PARTS = partsFromEnv();
const PROFILE_DIR = path.join(ROOT, 'bench', '.profiles');

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const APP_SCRIPT = here('./servers/app-server.ts');
const BARE_SCRIPT = here('./servers/bare-server.ts');

const AGENT_ID = 'bench-underwriting-bot';
const AGENT = {
  name: 'Benchmark underwriting bot',
  owner: 'bench@example.com',
  riskTier: 'high',
  grants: [
    { scope: 'payments:transfer', constraints: { maxAmount: 10000 } },
    { scope: 'payments:refund' },
    { scope: 'mail:send', keepInContainment: true, constraints: { recipientDomains: ['example.com'] } },
    { scope: 'crm:write' },
    { scope: 'crm:read' },
  ],
};
const DECISION_REQUEST = JSON.stringify({ agentId: AGENT_ID, action: 'payments:transfer', context: { amount: 500 } });
const isAllow = (body: string) => body.includes('"decision":"allow"');

type Server = 'bare' | 'app';
type Mode = 'max' | 'rate';

interface RunResult {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  mismatches: number;
  /** Server CPU time per response, microseconds: user (JavaScript, mostly) and system (kernel: sockets). */
  userPerRequest: number;
  systemPerRequest: number;
  /** The load generator's own event-loop delay p99 (ms): its stalls show up as server latency. */
  generatorStallP99: number;
}

/** One autocannon run; latencies are collected here at sub-millisecond resolution. */
async function load(server: ServerChild, token: string, mode: Mode, seconds: number): Promise<RunResult> {
  const samples = new Samples();
  let responses = 0;
  const url = `http://${HOST}:${server.port}`;
  const cpuBefore = await server.cpuUsage();
  const countFrom = performance.now() + Math.min(SKIP, seconds - 1) * 1000;
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  loopDelay.enable();
  const result = await new Promise<Omit<RunResult, 'userPerRequest' | 'systemPerRequest' | 'generatorStallP99'>>((resolve, reject) => {
    const instance = autocannon(
      {
        url: `${url}/v1/decisions`,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: DECISION_REQUEST,
        connections: mode === 'max' ? MAX_CONNECTIONS : RATE_CONNECTIONS,
        pipelining: 1,
        duration: seconds,
        timeout: 10,
        ...(mode === 'rate' ? { overallRate: RATE } : {}),
        verifyBody: isAllow,
      },
      (err, result) => {
        clearTimeout(guard);
        if (err) return reject(err);
        const [p50, p99] = samples.percentiles([0.5, 0.99]);
        resolve({
          rps: result['2xx'] / result.duration,
          p50: p50!,
          p99: p99!,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          mismatches: result.mismatches,
        });
      },
    );
    instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
      responses++;
      if (performance.now() >= countFrom) samples.add(ms);
    });
    // autocannon stops itself after `duration`; this only guards against a hang.
    const guard = setTimeout(() => instance.stop(), (seconds + 15) * 1000);
  });
  loopDelay.disable();
  const cpuAfter = await server.cpuUsage();
  const n = responses || NaN;
  return {
    ...result,
    userPerRequest: (cpuAfter.user - cpuBefore.user) / n,
    systemPerRequest: (cpuAfter.system - cpuBefore.system) / n,
    // The histogram includes the timer's own 5 ms period.
    generatorStallP99: Math.max(0, loopDelay.percentile(99) / 1e6 - 5),
  };
}

async function post(url: string, body: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal: AbortSignal.timeout(5000) });
  return { status: res.status, text: await res.text() };
}

/** Fails loudly unless the server answers the benchmark request with 200 and decision allow. */
async function checkSample(name: string, url: string, token: string): Promise<string> {
  const res = await post(`${url}/v1/decisions`, DECISION_REQUEST, { authorization: `Bearer ${token}` });
  if (res.status !== 200 || !isAllow(res.text)) {
    throw new Error(`${name}: sample decision is not a 200 allow; got ${res.status} ${res.text}`);
  }
  return res.text;
}

async function redisCleanup(prefix: string): Promise<number> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000 });
  let deleted = 0;
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) deleted += await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

async function dropDatabase(name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: `${PG_BASE}/postgres`, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await admin.query(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.end();
  }
}

const loadAvg = () => loadavg().map((x) => x.toFixed(2)).join(' ');

function withTimeout<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]);
}

/** What the decision part shares with the rest of the run. */
interface DecisionRun {
  databaseUrl: string;
  prefix: string;
  token: string;
  /** This part's children; the run's cleanup stops them too. */
  children: ServerChild[];
  profileArgs(name: string): string[];
}

/** The decision endpoint against the bare baseline: per-run lines, the table and the two goals. */
async function decisionPart({ databaseUrl, prefix, token, children, profileArgs }: DecisionRun): Promise<void> {
  children.push(
    await startChild(
      'app',
      APP_SCRIPT,
      {
        NODE_ENV: 'production',
        ARMALO_ROLE: 'web',
        DATABASE_URL: databaseUrl,
        REDIS_URL,
        HOST,
        PORT: '0',
        LOG_LEVEL: 'warn',
        ARMALO_QUEUE_PREFIX: prefix,
        ARMALO_API_TOKENS: `bench:${token}`,
      },
      { execArgv: profileArgs('app') },
    ),
  );
  const appUrl = `http://${HOST}:${children[0]!.port}`;
  const put = await fetch(`${appUrl}/v1/agents/${AGENT_ID}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(AGENT),
    signal: AbortSignal.timeout(5000),
  });
  if (put.status !== 201 && put.status !== 200) throw new Error(`registering the agent failed: ${put.status} ${await put.text()}`);
  const answer = await checkSample('app', appUrl, token);

  children.push(await startChild('bare', BARE_SCRIPT, { BODY: answer }, { execArgv: profileArgs('bare') }));
  const bareUrl = `http://${HOST}:${children[1]!.port}`;
  const bareAnswer = await checkSample('bare', bareUrl, token);
  if (Buffer.byteLength(bareAnswer) !== Buffer.byteLength(answer)) throw new Error('the bare server does not answer the same bytes');
  console.log(`request body ${Buffer.byteLength(DECISION_REQUEST)} bytes; answer body ${Buffer.byteLength(answer)} bytes (both servers): ${answer}`);

  const servers: Record<Server, ServerChild> = { app: children[0]!, bare: children[1]! };
  const ensureAlive = () => {
    const dead = children.find((c) => c.exited());
    if (dead) throw new Error(`${dead.name} server exited during the benchmark`);
  };

  if (WARMUP > 0) {
    for (const server of ['bare', 'app'] as const) {
      await load(servers[server], token, 'max', WARMUP);
      ensureAlive();
    }
  }

  // Interleaved (bare, app, bare, app ...) so drift on the machine hits both servers alike.
  const results: Record<Server, Record<Mode, RunResult[]>> = { bare: { max: [], rate: [] }, app: { max: [], rate: [] } };
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of ['max', 'rate'] as const) {
      for (const server of ['bare', 'app'] as const) {
        const r = await load(servers[server], token, mode, DURATION);
        ensureAlive();
        results[server][mode].push(r);
        const label = mode === 'max' ? `max load (${MAX_CONNECTIONS} conn)` : `${fmtInt(RATE)} req/s (${RATE_CONNECTIONS} conn)`;
        console.log(
          `round ${round}/${ROUNDS} ${server.padEnd(4)} ${label.padEnd(24)} ${fmtInt(r.rps).padStart(7)} req/s  p50 ${fmtMs(r.p50)} ms  p99 ${fmtMs(r.p99)} ms` +
            `  server CPU/req ${fmtInt(r.userPerRequest)}+${fmtInt(r.systemPerRequest)} µs  generator stall p99 ${fmtMs(r.generatorStallP99)} ms  non-2xx ${r.non2xx}  errors ${r.errors}${r.mismatches ? `  not-allow answers ${r.mismatches}` : ''}`,
        );
      }
    }
  }

  const summary = (server: Server) => {
    const max = results[server].max;
    const rate = results[server].rate;
    const all = [...max, ...rate];
    return {
      rps: median(max.map((r) => r.rps)),
      maxP50: median(max.map((r) => r.p50)),
      maxP99: median(max.map((r) => r.p99)),
      rateRps: median(rate.map((r) => r.rps)),
      rateP50: median(rate.map((r) => r.p50)),
      rateP99: median(rate.map((r) => r.p99)),
      userPerRequest: median(max.map((r) => r.userPerRequest)),
      systemPerRequest: median(max.map((r) => r.systemPerRequest)),
      non2xx: all.reduce((n, r) => n + r.non2xx, 0),
      errors: all.reduce((n, r) => n + r.errors + r.mismatches, 0),
      timeouts: all.reduce((n, r) => n + r.timeouts, 0),
      mismatches: all.reduce((n, r) => n + r.mismatches, 0),
    };
  };
  const s = { bare: summary('bare'), app: summary('app') };
  const names: Record<Server, string> = { bare: 'bare node:http', app: 'POST /v1/decisions' };

  console.log('');
  console.log(
    table(
      [
        ['', 'max load', 'max load', 'max load', `@${fmtInt(RATE)}/s`, `@${fmtInt(RATE)}/s`, '', ''],
        ['server', 'req/s', 'p50 ms', 'p99 ms', 'p50 ms', 'p99 ms', 'non-2xx', 'errors'],
      ],
      (['bare', 'app'] as const).map((k) => [
        names[k],
        fmtInt(s[k].rps),
        fmtMs(s[k].maxP50),
        fmtMs(s[k].maxP99),
        fmtMs(s[k].rateP50),
        fmtMs(s[k].rateP99),
        String(s[k].non2xx),
        String(s[k].errors),
      ]),
    ),
  );
  console.log(`(medians of ${ROUNDS} round(s) of ${DURATION} s; max load = ${MAX_CONNECTIONS} connections, pipelining 1; non-2xx and errors are totals over all runs)`);
  for (const k of ['bare', 'app'] as const) {
    if (s[k].timeouts || s[k].mismatches) console.log(`${names[k]}: errors include ${s[k].timeouts} timeout(s) and ${s[k].mismatches} answer(s) that were not "allow"`);
    if (s[k].rateRps < RATE * 0.95) console.log(`${names[k]}: the fixed-rate runs reached only ${fmtInt(s[k].rateRps)} req/s of ${fmtInt(RATE)}`);
  }

  const cpu = (k: Server) => `${fmtInt(s[k].userPerRequest)} user + ${fmtInt(s[k].systemPerRequest)} system`;
  console.log(`server CPU per request at max load, µs (median): bare ${cpu('bare')}, ours ${cpu('app')}`);
  const allRuns = [...results.bare.max, ...results.app.max, ...results.bare.rate, ...results.app.rate];
  console.log(`load generator event-loop stall p99, median of runs: ${fmtMs(median(allRuns.map((r) => r.generatorStallP99)))} ms (its stalls count as server latency)`);
  console.log(`load average at the end ${loadAvg()}`);

  const ratio = s.app.rps / s.bare.rps;
  const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
  console.log(`throughput ratio ours/bare: ${ratio.toFixed(2)} (${fmtInt(s.app.rps)} / ${fmtInt(s.bare.rps)} req/s)`);
  console.log(`goal "at least half the bare server's throughput":  ${verdict(ratio >= GOAL_RATIO)} (${ratio.toFixed(2)})`);
  const floor = s.bare.rateP99 >= GOAL_P99_MS * 0.8 ? `; inconclusive here: the bare server's own p99 is ${fmtMs(s.bare.rateP99)} ms` : `; bare server ${fmtMs(s.bare.rateP99)} ms`;
  console.log(`goal "p99 under ${GOAL_P99_MS} ms at ${fmtInt(RATE)} requests/s":         ${verdict(s.app.rateP99 < GOAL_P99_MS)} (${fmtMs(s.app.rateP99)} ms${floor})`);
  // The next part gets the machine to itself.
  await Promise.all(children.map((c) => c.stop()));
}

async function main(): Promise<number> {
  const runId = randomBytes(5).toString('hex');
  const dbName = `armalo_bench_${runId}`;
  const databaseUrl = `${PG_BASE}/${dbName}`;
  const prefix = `armalo-bench-${runId}`;
  const token = `bench_${randomBytes(24).toString('hex')}`;
  /** Every child of the run, by part; cleanup stops them all (stopping a stopped one is a no-op). */
  const decisionChildren: ServerChild[] = [];
  const slackChildren: ServerChild[] = [];
  const approvalsChildren: ServerChild[] = [];
  const packetsChildren: ServerChild[] = [];
  const allChildren = () => [...decisionChildren, ...slackChildren, ...approvalsChildren, ...packetsChildren];
  const profileDir = (name: string) => path.join(PROFILE_DIR, runId, name);
  const profileArgs = (name: string) => (CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${profileDir(name)}`] : []);
  let dbCreated = false;
  let tempDir: string | undefined;

  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      const children = allChildren();
      await Promise.all(children.map((c) => c.stop()));
      const done: string[] = [`${children.length} server(s) stopped`];
      if (dbCreated) {
        await withTimeout('dropping the database', 15_000, dropDatabase(dbName)).then(
          () => done.push(`database ${dbName} dropped`),
          (err: Error) => console.error(`cleanup: ${err.message} (drop database ${dbName} by hand)`),
        );
      }
      await withTimeout('cleaning Redis', 15_000, redisCleanup(prefix)).then(
        (keys) => done.push(`${keys} Redis key(s) under ${prefix}: deleted`),
        (err: Error) => console.error(`cleanup: ${err.message} (delete keys ${prefix}:* by hand)`),
      );
      if (tempDir) {
        try {
          rmSync(tempDir, { recursive: true, force: true });
          done.push(`temp dir ${tempDir} removed`);
        } catch (err) {
          console.error(`cleanup: ${(err as Error).message} (remove ${tempDir} by hand)`);
        }
      }
      console.log(`cleanup: ${done.join(', ')}`);
    })());

  // Bounded in time whatever happens. Decisions: rounds x 4 runs, warm-ups, start-up and cleanup
  // slack. Slack: start-ups, warm-up, the ack run, and every time-to-effect measurement timing out.
  // Approvals: start-ups, the sample, the run and the whole drain. Packets: start-ups, seeding,
  // and every run timing out.
  const decisionBudget = ROUNDS * 4 * (DURATION + 3) + 2 * (WARMUP + 3) + 90;
  const slackBudget = slackBudgetSeconds({ duration: DURATION, warmup: WARMUP, tteAgents: TTE_AGENTS });
  const approvalsBudget = approvalsBudgetSeconds({ duration: DURATION, drain: APPROVALS_DRAIN });
  const packetsBudget = packetsBudgetSeconds({ runs: PACKET_RUNS });
  const budgetSeconds =
    (PARTS.decisions ? decisionBudget : 0) + (PARTS.slack ? slackBudget : 0) + (PARTS.approvals ? approvalsBudget : 0) + (PARTS.packets ? packetsBudget : 0);
  const watchdog = setTimeout(() => {
    console.error(`watchdog: the benchmark ran over its ${budgetSeconds} s budget; cleaning up and exiting`);
    void withTimeout('cleanup', 30_000, cleanup()).finally(() => process.exit(2));
  }, budgetSeconds * 1000);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`${signal}: cleaning up`);
      void withTimeout('cleanup', 30_000, cleanup()).finally(() => process.exit(130));
    });
  }

  try {
    if (PARTS.decisions) console.log('POST /v1/decisions vs a bare node:http server');
    if (PARTS.slack) console.log(`${PARTS.decisions ? 'then ' : ''}Slack: acknowledgement latency of /armalo commands, containment time-to-effect across two instances`);
    if (PARTS.approvals) console.log(`${PARTS.decisions || PARTS.slack ? 'then ' : ''}approvals: acknowledgement of approval requests, and time to their last card under Slack's posting limit`);
    if (PARTS.packets) console.log(`${PARTS.decisions || PARTS.slack || PARTS.approvals ? 'then ' : ''}packets: trust packets for an agent with a year of evidence, over REST and in Slack`);
    console.log(`node ${process.version}, ${cpus().length} CPU(s) (${cpus()[0]?.model.trim() ?? 'unknown'}), ${new Date().toISOString()}`);
    console.log(`load average ${loadAvg()} (other work on the machine skews results; compare rows of the same run)`);
    if (PARTS.decisions) {
      console.log(`rounds ${ROUNDS}, ${DURATION} s per run (latencies of its first ${Math.min(SKIP, DURATION - 1)} s not counted), ${WARMUP} s warm-up per server${CPU_PROF ? `, CPU profiles of both servers into ${path.join(PROFILE_DIR, runId)}` : ''}`);
    }
    if (PARTS.slack) {
      console.log(`slack: /armalo status at ${fmtInt(SLACK_RATE)}/s for ${DURATION} s with contain+restore pairs beside it (after ${WARMUP} s of warm-up commands), then time-to-effect on ${TTE_AGENTS} agent(s)`);
    }
    if (PARTS.approvals) {
      console.log(`approvals: POST /v1/approval-requests at ${fmtInt(APPROVALS_RATE)}/s for ${DURATION} s, then up to ${APPROVALS_DRAIN} s for the remaining cards`);
    }

    if (PARTS.packets) {
      console.log(`packets: ${PACKET_RUNS} packet(s) over REST and ${PACKET_RUNS} asked for in Slack, one at a time, after one warm-up each`);
    }

    await ensureDatabaseExists(databaseUrl);
    dbCreated = true;
    /** Migrates the run's database; again before each later part, as migrations may be added while a long run is under way. */
    const migrate = async () => {
      const db = createDb(databaseUrl, { max: 1 });
      const { error } = await migrateToLatest(db).finally(() => db.destroy());
      if (error) throw error;
    };
    await migrate();

    if (PARTS.decisions) await decisionPart({ databaseUrl, prefix, token, children: decisionChildren, profileArgs });

    if (PARTS.slack || PARTS.approvals || PARTS.packets) tempDir = mkdtempSync(path.join(tmpdir(), 'armalo-bench-'));
    if (PARTS.slack) {
      if (PARTS.decisions) console.log('');
      if (PARTS.decisions) await migrate();
      await runSlackBench({
        host: HOST,
        databaseUrl,
        redisUrl: REDIS_URL,
        prefix,
        apiToken: token,
        duration: DURATION,
        warmup: WARMUP,
        rate: SLACK_RATE,
        tteAgents: TTE_AGENTS,
        tempDir: tempDir!,
        agent: AGENT,
        track: (child) => slackChildren.push(child),
      });
    }
    if (PARTS.approvals) {
      if (PARTS.decisions || PARTS.slack) await migrate();
      await runApprovalsBench({
        host: HOST,
        databaseUrl,
        redisUrl: REDIS_URL,
        // Its own queues (under the run's prefix, so cleanup deletes them): no job left over from
        // the Slack part runs in this part's worker.
        queuePrefix: `${prefix}:approvals`,
        apiToken: token,
        duration: DURATION,
        rate: APPROVALS_RATE,
        drain: APPROVALS_DRAIN,
        tempDir: tempDir!,
        agent: AGENT,
        track: (child) => approvalsChildren.push(child),
      });
    }
    if (PARTS.packets) {
      if (PARTS.decisions || PARTS.slack || PARTS.approvals) await migrate();
      await runPacketsBench({
        host: HOST,
        databaseUrl,
        redisUrl: REDIS_URL,
        // Its own queues under the run's prefix, as the approvals part has.
        queuePrefix: `${prefix}:packets`,
        apiToken: token,
        runs: PACKET_RUNS,
        tempDir: tempDir!,
        agent: AGENT,
        track: (child) => packetsChildren.push(child),
      });
    }
    return 0;
  } finally {
    await cleanup();
    clearTimeout(watchdog);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
