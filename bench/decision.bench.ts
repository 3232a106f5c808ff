/**
 * POST /v1/decisions against a bare node:http baseline, measured in the same run on the same
 * machine, then (bench/slack.ts) Slack acknowledgement latency and containment time-to-effect,
 * then (bench/approvals.ts) approval requests and their cards under Slack's posting limit, then
 * (bench/packets.ts) trust packets built over REST and asked for in Slack.
 * Servers run in child processes; the load generators (autocannon, and our own for Slack) run
 * here. See bench/README.md for what is measured, why, and how to read the tables.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { createDb, ensureDatabaseExists } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrator.js';
import { ROOT, startChild, type ServerChild } from './lib/children.js';
import { Samples, fmtInt, fmtMs, median, table } from './lib/stats.js';
import { HttpPool } from './lib/http.js';
import { BENCH_POLICY_NOTE, INSTANCE_NODE_FLAGS, INSTANCE_RUNTIME, configuredInstanceEnv, mb, prepareInstances, writeBenchPolicy } from './lib/instance.js';
import { runSlackBench, slackBudgetSeconds } from './slack.js';
import { approvalsBudgetSeconds, runApprovalsBench } from './approvals.js';
import { packetsBudgetSeconds, runPacketsBench } from './packets.js';
import { deleteRedisPrefix } from './lib/redis-cleanup.js';
import type { ProbeRequest, ProbeResult } from './servers/rate-probe.js';

// Only ever local services: this script creates and force-drops a database.
const HOST = '127.0.0.1';
const PG_BASE = `postgres://postgres@${HOST}:5432`;
const REDIS_URL = `redis://${HOST}:6379`;

const MAX_CONNECTIONS = 32;
const RATE = 1000;
const RATE_CONNECTIONS = 10;
/** Goals (issue 11): throughput vs bare for an action no rule covers, and for one a rule covers. */
const GOAL_RATIO_UNCOVERED = 0.7;
const GOAL_RATIO_COVERED = 0.5;
const GOAL_P99_MS = 2;
const GOAL_TTE_P99_MS = 100;
const GOAL_RSS_MB = 180;

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
/** Decisions per second on the approvals part's instance while it does the card work (0: none). */
const APPROVALS_DECISION_RATE = intFromEnv('BENCH_APPROVALS_DECISION_RATE', 200, 0, 2000);
/** Decisions: the role of the two instances; `web` (no worker on their event loop) is for comparison only. */
const ROLE = (process.env.BENCH_ROLE ?? 'all') === 'web' ? 'web' : 'all';
/**
 * Contain/restore cycles in the decision part's time-to-effect series: 100, so that the goal's p99
 * is a 99th percentile (nearest rank: the second slowest) rather than the slowest of a few; the
 * slowest is printed beside it.
 */
const TTE_CYCLES = intFromEnv('BENCH_TTE_CYCLES', 100, 1, 500);
/**
 * Decisions: the time-to-effect poller sends one decision every this many ms (0: back to back). A
 * back-to-back poller is itself thousands of requests a second on A, far above the goal's 1,000/s
 * load, and on two cores it starves the instances it measures; every 2 ms is 500/s more.
 */
const TTE_POLL_MS = intFromEnv('BENCH_TTE_POLL_MS', 2, 0, 50);
/** What sends the 1,000 req/s decision load on A during the time-to-effect cycles: the lean probe (its own process) or autocannon (in this process). */
const TTE_LOAD = (process.env.BENCH_TTE_LOAD ?? 'probe') as 'probe' | 'autocannon';
if (TTE_LOAD !== 'probe' && TTE_LOAD !== 'autocannon') throw new Error(`BENCH_TTE_LOAD must be probe or autocannon, not ${String(TTE_LOAD)}`);
/** Trust packets measured per path (REST and Slack). */
const PACKET_RUNS = intFromEnv('BENCH_PACKET_RUNS', 5, 1, 50);

const PART_NAMES = ['decisions', 'slack', 'approvals', 'packets', 'sdk', 'scale'] as const;
type Part = (typeof PART_NAMES)[number];

/** BENCH_ONLY: unset or `all` for every part, else one part or a comma-separated list of them. */
function partsFromEnv(): Record<Part, boolean> {
  const raw = (process.env.BENCH_ONLY ?? '').trim();
  const all = raw === '' || raw === 'all';
  const chosen = all ? [...PART_NAMES] : raw.split(',').map((p) => p.trim());
  const unknown = chosen.filter((p) => !(PART_NAMES as readonly string[]).includes(p));
  if (unknown.length || chosen.length === 0) throw new Error(`BENCH_ONLY must be ${PART_NAMES.join(', ')} (or a comma-separated list of them), or all (got "${raw}")`);
  return { decisions: chosen.includes('decisions'), slack: chosen.includes('slack'), approvals: chosen.includes('approvals'), packets: chosen.includes('packets'), sdk: chosen.includes('sdk'), scale: chosen.includes('scale') };
}
const PARTS = partsFromEnv();
const PROFILE_DIR = path.join(ROOT, 'bench', '.profiles');

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const APP_SCRIPT = here('./servers/app-server.ts');
const BARE_SCRIPT = here('./servers/bare-server.ts');
const FAKE_SLACK_SCRIPT = here('./servers/fake-slack-server.ts');
const PROBE_SCRIPT = here('./servers/rate-probe.ts');

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
/**
 * The decision part's agents: medium risk (the example policy routes every action of a high or
 * critical agent) with fresh evidence (its stale-evidence rule adds an approver otherwise), so
 * that which rules cover a request depends on the request alone.
 */
const DECISION_AGENT_ID = 'bench-decisions-bot';
const TTE_AGENT_ID = 'bench-tte-bot';
const DECISION_AGENT = { ...AGENT, name: 'Benchmark decisions bot', riskTier: 'medium' };
/** An action no routing rule of the example policy covers. */
const UNCOVERED_REQUEST = JSON.stringify({ agentId: DECISION_AGENT_ID, action: 'crm:read' });
/** An action the large-payments rule covers (payments:*) whose context does not trigger it (amount 500, rule over 10,000). */
const COVERED_REQUEST = JSON.stringify({ agentId: DECISION_AGENT_ID, action: 'payments:transfer', context: { amount: 500 } });
const TTE_REQUEST = JSON.stringify({ agentId: TTE_AGENT_ID, action: 'payments:transfer', context: { amount: 500 } });
const isAllow = (body: string) => body.includes('"decision":"allow"');

type Server = 'bare' | 'uncovered' | 'covered';
const SERVERS: readonly Server[] = ['bare', 'uncovered', 'covered'];
type Mode = 'max' | 'rate' | 'probe';

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
  /** The load generator's own event-loop delay p99 (ms): its stalls show up as server latency. For the probe, how late its requests were written (p99). */
  generatorStallP99: number;
  /** The probe only: requests that were due while the server held every socket. */
  blocked?: number;
  /** Probe runs: the probe's own longest pause between ticks (ms), and its scheduling priority. */
  probeGapMax?: number;
  probePriority?: number;
}

/** The lean fixed-rate probe (bench/servers/rate-probe.ts), in a process of its own. */
class Probe {
  private readonly child: ChildProcess;
  constructor() {
    this.child = fork(PROBE_SCRIPT, [], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  }

  run(request: ProbeRequest): Promise<ProbeResult> {
    return new Promise<ProbeResult>((resolve, reject) => {
      const onMessage = (msg: { probeResult?: ProbeResult; probeError?: string }) => {
        if (!msg.probeResult && msg.probeError === undefined) return;
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
        if (msg.probeResult) resolve(msg.probeResult);
        else reject(new Error(`rate probe: ${msg.probeError}`));
      };
      const onExit = () => reject(new Error('the rate probe exited during a run'));
      this.child.on('message', onMessage);
      this.child.once('exit', onExit);
      this.child.send({ probe: request });
    });
  }

  /** Ends the run in progress early; its result still arrives (the promise `run` returned). */
  stop(): void {
    this.child.send({ probeStop: true });
  }

  close(): void {
    this.child.disconnect();
  }
}

/** The probe's priority as seen in the last probe run (set once per process). */
let lastProbePriority: number | undefined;
const probePriorityNote = () => (lastProbePriority === undefined ? '' : lastProbePriority < 0 ? `, at scheduling priority ${lastProbePriority} (ahead of the servers)` : ', at normal priority (raising it was not permitted)');

/** One run of the lean probe at RATE req/s (latency only; throughput is autocannon's). */
async function probeLoad(probe: Probe, server: ServerChild, token: string, seconds: number, body: string): Promise<RunResult> {
  const cpuBefore = await server.cpuUsage();
  const r = await probe.run({
    host: HOST,
    port: server.port,
    path: '/v1/decisions',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body,
    rate: RATE,
    connections: RATE_CONNECTIONS,
    seconds,
    skipSeconds: Math.min(SKIP, seconds - 1),
    expect: '"decision":"allow"',
  });
  const cpuAfter = await server.cpuUsage();
  lastProbePriority = r.priority;
  const samples = new Samples();
  for (const ms of r.latencies) samples.add(ms);
  const [p50, p99] = samples.percentiles([0.5, 0.99]);
  const n = r.answered || NaN;
  return {
    rps: r.answered / seconds,
    p50: p50!,
    p99: p99!,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: 0,
    mismatches: r.mismatches,
    userPerRequest: (cpuAfter.user - cpuBefore.user) / n,
    systemPerRequest: (cpuAfter.system - cpuBefore.system) / n,
    generatorStallP99: r.sendLagP99,
    blocked: r.blocked,
    probeGapMax: r.tickGapMax,
    probePriority: r.priority,
  };
}

/** One autocannon run; latencies are collected here at sub-millisecond resolution. */
async function load(server: ServerChild, token: string, mode: Mode, seconds: number, body: string): Promise<RunResult> {
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
        body,
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
async function checkSample(name: string, url: string, token: string, body: string): Promise<string> {
  const res = await post(`${url}/v1/decisions`, body, { authorization: `Bearer ${token}` });
  if (res.status !== 200 || !isAllow(res.text)) {
    throw new Error(`${name}: sample decision is not a 200 allow; got ${res.status} ${res.text}`);
  }
  return res.text;
}

const redisCleanup = (prefix: string) => deleteRedisPrefix(REDIS_URL, prefix);

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
  tempDir: string;
  /** This part's children; the run's cleanup stops them too. */
  children: ServerChild[];
  profileArgs(name: string): string[];
}

async function putJson(url: string, token: string, method: 'PUT' | 'POST', body: unknown): Promise<void> {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  if (res.status >= 300) throw new Error(`${method} ${new URL(url).pathname} failed: ${res.status} ${await res.text()}`);
}

interface TteResult {
  contain: Samples;
  restore: Samples;
  /** B's answers to the contain and restore calls. */
  acks: Samples;
  /** Each contain: its cycle (from 1), its time-to-effect and B's answer time, ms. */
  contains: { cycle: number; ms: number; ackMs: number }[];
  failures: string[];
  /** The background decision load on A while the cycles ran. */
  load: { rps: number; non2xx: number; errors: number; mismatches: number };
  generatorStallP99: number;
}

/**
 * Containment time-to-effect on another instance: a 1,000 req/s decision load runs against A
 * while a poller asks A about the TTE agent back to back on its own connection; `contain` goes to
 * B over REST. Measured from just before the contain is handed to node:http until the poller's
 * first `deny` from A. Then `restore` (which the bench policy lets through at once) goes to B and
 * the time until A allows again is measured the same way.
 */
async function timeToEffect(a: ServerChild, b: ServerChild, token: string, probe: Probe): Promise<TteResult> {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  const poller = new HttpPool(HOST, a.port, 1);
  const commander = new HttpPool(HOST, b.port, 1);
  const out: TteResult = { contain: new Samples(), restore: new Samples(), acks: new Samples(), contains: [], failures: [], load: { rps: 0, non2xx: 0, errors: 0, mismatches: 0 }, generatorStallP99: 0 };
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  let background: { stop(): void } | undefined;
  const backgroundStarted = performance.now();
  const backgroundDone = TTE_LOAD === 'probe' ? probe.run({
    host: HOST,
    port: a.port,
    path: '/v1/decisions',
    headers,
    body: UNCOVERED_REQUEST,
    rate: RATE,
    connections: RATE_CONNECTIONS,
    seconds: 3600,
    skipSeconds: 0,
    expect: '"decision":"allow"',
  }).then((r) => {
    out.load = { rps: r.answered / ((performance.now() - backgroundStarted) / 1000), non2xx: r.non2xx, errors: r.errors, mismatches: r.mismatches };
  }) : new Promise<void>((resolve, reject) => {
    background = autocannon(
      { url: `http://${HOST}:${a.port}/v1/decisions`, method: 'POST', headers, body: UNCOVERED_REQUEST, connections: RATE_CONNECTIONS, pipelining: 1, duration: 3600, timeout: 10, overallRate: RATE, verifyBody: isAllow },
      (err, r) => {
        if (err) return reject(err);
        out.load = { rps: r['2xx'] / r.duration, non2xx: r.non2xx, errors: r.errors, mismatches: r.mismatches };
        resolve();
      },
    );
  });
  /** Polls A until its answer is `want`; resolves with when that answer arrived, or undefined after 5 s. */
  const pollUntil = async (want: 'allow' | 'deny', since: number): Promise<number | undefined> => {
    for (;;) {
      const ans = await poller.post('/v1/decisions', headers, TTE_REQUEST, 5000);
      if (ans.status !== 200) throw new Error(`decision on A: HTTP ${ans.status} ${ans.body.slice(0, 300)}`);
      if (ans.body.includes(`"decision":"${want}"`)) return ans.doneAt;
      if (ans.doneAt - since > 5000) return undefined;
      const wait = ans.sentAt + TTE_POLL_MS - performance.now();
      if (wait > 0.5) await new Promise((r) => setTimeout(r, wait));
    }
  };
  const act = (action: 'contain' | 'restore') => commander.post(`/v1/agents/${TTE_AGENT_ID}/actions`, headers, JSON.stringify({ action, reason: 'bench time-to-effect' }), 5000);
  try {
    await new Promise((r) => setTimeout(r, 1000)); // the load settles
    loopDelay.enable();
    for (let i = 0; i < TTE_CYCLES && out.failures.length < 3; i++) {
      if ((await pollUntil('allow', performance.now())) === undefined) {
        out.failures.push(`cycle ${i + 1}: A did not allow before the contain`);
        continue;
      }
      for (const [action, want, samples] of [['contain', 'deny', out.contain], ['restore', 'allow', out.restore]] as const) {
        const sentAt = performance.now();
        let ackMs = NaN;
        const answer = act(action).then((ans) => {
          if (ans.status !== 201 && ans.status !== 200) out.failures.push(`cycle ${i + 1}: ${action} on B answered ${ans.status} ${ans.body.slice(0, 300)}`);
          else out.acks.add((ackMs = ans.ms));
        });
        const at = await pollUntil(want, sentAt);
        await answer;
        if (at === undefined) out.failures.push(`cycle ${i + 1}: A did not ${want} within 5 s of the ${action}`);
        else {
          samples.add(at - sentAt);
          if (action === 'contain') out.contains.push({ cycle: i + 1, ms: at - sentAt, ackMs });
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    loopDelay.disable();
    if (TTE_LOAD === 'probe') probe.stop();
    background?.stop();
    await backgroundDone.catch((err: Error) => out.failures.push(`background load: ${err.message}`));
    poller.close();
    commander.close();
  }
  out.generatorStallP99 = Math.max(0, loopDelay.percentile(99) / 1e6 - 5);
  return out;
}

/**
 * The decision endpoint against the bare baseline, the way a deployment runs it: two instances
 * (`ARMALO_ROLE=all`, Slack and Teams configured against local fakes, the example policy with an
 * immediate restore), throughput and latency on A, containment time-to-effect from B to A, and
 * each instance's RSS at the end. Per-run lines, the table and the goals.
 */
async function decisionPart({ databaseUrl, prefix, token, tempDir, children, profileArgs }: DecisionRun): Promise<void> {
  const fake = await startChild('fake-slack', FAKE_SLACK_SCRIPT, { HOST });
  children.push(fake);
  const instanceEnv = configuredInstanceEnv({ databaseUrl, redisUrl: REDIS_URL, host: HOST, queuePrefix: prefix, apiToken: token, policyFile: writeBenchPolicy(tempDir), fakeUrl: `http://${HOST}:${fake.port}` }, ROLE);
  if (ROLE !== 'all') console.log(`BENCH_ROLE=${ROLE}: the instances run without a worker (comparison only; the goals are for the all role)`);
  const { compiled } = await prepareInstances();
  const a = await startChild('app A', APP_SCRIPT, instanceEnv, { compiled, execArgv: [...INSTANCE_NODE_FLAGS, ...profileArgs('app')] });
  children.push(a);
  const b = await startChild('app B', APP_SCRIPT, instanceEnv, { compiled, execArgv: [...INSTANCE_NODE_FLAGS, ...profileArgs('app-b')] });
  children.push(b);
  const rssAtStart = [await a.cpuUsage(), await b.cpuUsage()].map((u) => u.rss);
  const appUrl = `http://${HOST}:${a.port}`;
  for (const id of [DECISION_AGENT_ID, TTE_AGENT_ID]) {
    await putJson(`${appUrl}/v1/agents/${id}`, token, 'PUT', DECISION_AGENT);
    // Fresh evidence, so the example policy's stale-evidence rule does not match.
    await putJson(`${appUrl}/v1/agents/${id}/evaluations`, token, 'POST', { id: `bench-eval-${id}`, dimension: 'safety', passed: true, observedAt: new Date().toISOString(), source: 'bench' });
  }
  const answers = { uncovered: await checkSample('app (no rule covers)', appUrl, token, UNCOVERED_REQUEST), covered: await checkSample('app (a rule covers)', appUrl, token, COVERED_REQUEST) };
  await checkSample('app B', `http://${HOST}:${b.port}`, token, TTE_REQUEST);

  const bare = await startChild('bare', BARE_SCRIPT, { BODY: answers.uncovered }, { execArgv: profileArgs('bare') });
  children.push(bare);
  const bareUrl = `http://${HOST}:${bare.port}`;
  const bareAnswer = await checkSample('bare', bareUrl, token, UNCOVERED_REQUEST);
  if (Buffer.byteLength(bareAnswer) !== Buffer.byteLength(answers.uncovered)) throw new Error('the bare server does not answer the same bytes');
  console.log(BENCH_POLICY_NOTE);
  console.log(`no rule covers: ${UNCOVERED_REQUEST} → ${answers.uncovered}`);
  console.log(`a rule covers, context does not trigger it: ${COVERED_REQUEST} → ${answers.covered}`);

  const targets: Record<Server, { child: ServerChild; body: string }> = {
    bare: { child: bare, body: UNCOVERED_REQUEST },
    uncovered: { child: a, body: UNCOVERED_REQUEST },
    covered: { child: a, body: COVERED_REQUEST },
  };
  const ensureAlive = () => {
    const dead = children.find((c) => c.exited());
    if (dead) throw new Error(`${dead.name} exited during the benchmark`);
  };

  if (WARMUP > 0) {
    for (const server of SERVERS) {
      await load(targets[server].child, token, 'max', WARMUP, targets[server].body);
      ensureAlive();
    }
  }

  // Interleaved (bare, ours, ours, bare ...) so drift on the machine hits both servers alike.
  const results: Record<Server, Record<Mode, RunResult[]>> = { bare: { max: [], rate: [], probe: [] }, uncovered: { max: [], rate: [], probe: [] }, covered: { max: [], rate: [], probe: [] } };
  const probe = new Probe();
  let tte: TteResult;
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const mode of ['max', 'rate', 'probe'] as const) {
        for (const server of SERVERS) {
          const r = mode === 'probe' ? await probeLoad(probe, targets[server].child, token, DURATION, targets[server].body) : await load(targets[server].child, token, mode, DURATION, targets[server].body);
          ensureAlive();
          results[server][mode].push(r);
          const label = mode === 'max' ? `max load (${MAX_CONNECTIONS} conn)` : mode === 'rate' ? `${fmtInt(RATE)} req/s (${RATE_CONNECTIONS} conn)` : `probe ${fmtInt(RATE)} req/s (${RATE_CONNECTIONS} conn)`;
          console.log(
            `round ${round}/${ROUNDS} ${server.padEnd(9)} ${label.padEnd(24)} ${fmtInt(r.rps).padStart(7)} req/s  p50 ${fmtMs(r.p50)} ms  p99 ${fmtMs(r.p99)} ms` +
              `  server CPU/req ${fmtInt(r.userPerRequest)}+${fmtInt(r.systemPerRequest)} µs  ${mode === 'probe' ? `send lag p99 ${fmtMs(r.generatorStallP99)} ms  probe pause max ${fmtMs(r.probeGapMax ?? NaN)} ms  blocked ${r.blocked ?? 0}` : `generator stall p99 ${fmtMs(r.generatorStallP99)} ms`}  non-2xx ${r.non2xx}  errors ${r.errors}${r.mismatches ? `  not-allow answers ${r.mismatches}` : ''}`,
          );
        }
      }
    }
    console.log(`time-to-effect: ${TTE_CYCLES} contain/restore cycle(s) sent to B, decisions polled on A ${TTE_POLL_MS ? `every ${TTE_POLL_MS} ms` : "back to back"} under ${fmtInt(RATE)} req/s (sent by ${TTE_LOAD === 'probe' ? 'the rate probe, in its own process' : 'autocannon, in this process'})`);
    tte = await timeToEffect(a, b, token, probe);
  } finally {
    probe.close();
  }
  ensureAlive();
  const usageAtEnd = [await a.cpuUsage(), await b.cpuUsage()];
  const rssAtEnd = usageAtEnd.map((u) => u.rss);

  const summary = (server: Server) => {
    const max = results[server].max;
    const rate = results[server].rate;
    const probed = results[server].probe;
    const all = [...max, ...rate, ...probed];
    return {
      rps: median(max.map((r) => r.rps)),
      maxP50: median(max.map((r) => r.p50)),
      maxP99: median(max.map((r) => r.p99)),
      rateRps: median(rate.map((r) => r.rps)),
      rateP50: median(rate.map((r) => r.p50)),
      rateP99: median(rate.map((r) => r.p99)),
      probeP50: median(probed.map((r) => r.p50)),
      probeP99: median(probed.map((r) => r.p99)),
      blocked: probed.reduce((n, r) => n + (r.blocked ?? 0), 0),
      userPerRequest: median(max.map((r) => r.userPerRequest)),
      systemPerRequest: median(max.map((r) => r.systemPerRequest)),
      non2xx: all.reduce((n, r) => n + r.non2xx, 0),
      errors: all.reduce((n, r) => n + r.errors + r.mismatches, 0),
      timeouts: all.reduce((n, r) => n + r.timeouts, 0),
      mismatches: all.reduce((n, r) => n + r.mismatches, 0),
    };
  };
  const s = { bare: summary('bare'), uncovered: summary('uncovered'), covered: summary('covered') };
  const names: Record<Server, string> = { bare: 'bare node:http', uncovered: 'ours, no rule covers', covered: 'ours, rule not triggered' };

  console.log('');
  console.log(
    table(
      [
        ['', 'max load', 'max load', 'max load', `@${fmtInt(RATE)}/s`, `@${fmtInt(RATE)}/s`, 'probe', 'probe', '', ''],
        [`server (ours: ARMALO_ROLE=${ROLE})`, 'req/s', 'p50 ms', 'p99 ms', 'p50 ms', 'p99 ms', 'p50 ms', 'p99 ms', 'non-2xx', 'errors'],
      ],
      SERVERS.map((k) => [names[k], fmtInt(s[k].rps), fmtMs(s[k].maxP50), fmtMs(s[k].maxP99), fmtMs(s[k].rateP50), fmtMs(s[k].rateP99), fmtMs(s[k].probeP50), fmtMs(s[k].probeP99), String(s[k].non2xx), String(s[k].errors)]),
    ),
  );
  console.log(`(medians of ${ROUNDS} round(s) of ${DURATION} s; max load = ${MAX_CONNECTIONS} connections, pipelining 1; @${fmtInt(RATE)}/s = autocannon at a fixed rate; probe = the same rate from bench/servers/rate-probe.ts, a lean generator in its own process${probePriorityNote()}; non-2xx and errors are totals over all runs)`);
  for (const k of SERVERS) if (s[k].blocked) console.log(`${names[k]}: ${s[k].blocked} probe request(s) were due while the server held all ${RATE_CONNECTIONS} sockets (counted from when they were due)`);
  for (const k of SERVERS) {
    if (s[k].timeouts || s[k].mismatches) console.log(`${names[k]}: errors include ${s[k].timeouts} timeout(s) and ${s[k].mismatches} answer(s) that were not "allow"`);
    if (s[k].rateRps < RATE * 0.95) console.log(`${names[k]}: the fixed-rate runs reached only ${fmtInt(s[k].rateRps)} req/s of ${fmtInt(RATE)}`);
  }
  const cpu = (k: Server) => `${fmtInt(s[k].userPerRequest)} user + ${fmtInt(s[k].systemPerRequest)} system`;
  console.log(`server CPU per request at max load, µs (median): bare ${cpu('bare')}; no rule covers ${cpu('uncovered')}; rule not triggered ${cpu('covered')}`);
  const allRuns = SERVERS.flatMap((k) => [...results[k].max, ...results[k].rate]);
  console.log(`load generator event-loop stall p99, median of runs: ${fmtMs(median(allRuns.map((r) => r.generatorStallP99)))} ms (its stalls count as server latency)`);
  const c = tte.contain.percentiles([0.5, 0.99, 1]);
  const r = tte.restore.percentiles([0.5, 0.99, 1]);
  const ack = tte.acks.percentiles([0.5, 0.99]);
  console.log(
    `time-to-effect on A of a contain sent to B: n ${tte.contain.count}  p50 ${fmtMs(c[0]!)} ms  p99 ${fmtMs(c[1]!)} ms  max ${fmtMs(c[2]!)} ms; of the restore: p50 ${fmtMs(r[0]!)} ms  p99 ${fmtMs(r[1]!)} ms; B's answer to the call p50 ${fmtMs(ack[0]!)} ms p99 ${fmtMs(ack[1]!)} ms` +
      `  (background load on A ${fmtInt(tte.load.rps)} req/s, non-2xx ${tte.load.non2xx}, errors ${tte.load.errors + tte.load.mismatches}; generator stall p99 ${fmtMs(tte.generatorStallP99)} ms)`,
  );
  const slowest = [...tte.contains].sort((x, y) => y.ms - x.ms).slice(0, 3);
  if (slowest.length > 0) console.log(`slowest contains: ${slowest.map((c) => `cycle ${c.cycle} ${fmtMs(c.ms)} ms (B answered in ${fmtMs(c.ackMs)} ms)`).join(', ')}`);
  for (const f of tte.failures) console.log(`time-to-effect failure: ${f}`);
  console.log(`RSS per instance, MB: A ${mb(rssAtStart[0]!)} at start → ${mb(rssAtEnd[0]!)} after the run (V8 heap ${mb(usageAtEnd[0]!.heapUsed)} in use of ${mb(usageAtEnd[0]!.heapTotal)}); B ${mb(rssAtStart[1]!)} → ${mb(rssAtEnd[1]!)} (heap ${mb(usageAtEnd[1]!.heapUsed)} of ${mb(usageAtEnd[1]!.heapTotal)}) (node flags ${INSTANCE_NODE_FLAGS.join(' ')}, ${INSTANCE_RUNTIME})`);
  console.log(`load average at the end ${loadAvg()}`);

  const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
  const ratioU = s.uncovered.rps / s.bare.rps;
  const ratioC = s.covered.rps / s.bare.rps;
  const worstP99 = Math.max(s.uncovered.probeP99, s.covered.probeP99);
  const worstRss = Math.max(...rssAtEnd) / 1024 / 1024;
  const floor = s.bare.probeP99 >= GOAL_P99_MS * 0.8 ? `; inconclusive here: the bare server's own p99 is ${fmtMs(s.bare.probeP99)} ms` : `; bare server ${fmtMs(s.bare.probeP99)} ms`;
  const goals: [string, boolean, string][] = [
    [`throughput, no rule covers >= ${GOAL_RATIO_UNCOVERED}x bare`, ratioU >= GOAL_RATIO_UNCOVERED, `${ratioU.toFixed(2)}x (${fmtInt(s.uncovered.rps)} / ${fmtInt(s.bare.rps)} req/s)`],
    [`throughput, a rule covers, not triggered >= ${GOAL_RATIO_COVERED}x bare`, ratioC >= GOAL_RATIO_COVERED, `${ratioC.toFixed(2)}x (${fmtInt(s.covered.rps)} / ${fmtInt(s.bare.rps)} req/s)`],
    [
      `p99 <= ${GOAL_P99_MS} ms at ${fmtInt(RATE)} req/s (probe)`,
      worstP99 <= GOAL_P99_MS && s.uncovered.errors + s.covered.errors === 0,
      `${fmtMs(s.uncovered.probeP99)} / ${fmtMs(s.covered.probeP99)} ms${floor}; autocannon ${fmtMs(s.uncovered.rateP99)} / ${fmtMs(s.covered.rateP99)} ms (bare ${fmtMs(s.bare.rateP99)})`,
    ],
    [`containment time-to-effect on another instance p99 <= ${GOAL_TTE_P99_MS} ms`, tte.failures.length === 0 && tte.contain.count > 0 && c[1]! <= GOAL_TTE_P99_MS, `${fmtMs(c[1]!)} ms over ${tte.contain.count} cycle(s) (slowest ${fmtMs(c[2]!)} ms)${tte.failures.length ? `, ${tte.failures.length} failure(s)` : ''}`],
    [`RSS per instance after the run <= ${GOAL_RSS_MB} MB`, worstRss <= GOAL_RSS_MB, `A ${mb(rssAtEnd[0]!)} MB, B ${mb(rssAtEnd[1]!)} MB`],
  ];
  console.log('');
  console.log(table([['goal', 'verdict', 'measured']], goals.map(([goal, ok, measured]) => [goal, verdict(ok), measured])));
  // The next part gets the machine to itself.
  await Promise.all(children.map((child) => child.stop()));
}

async function main(): Promise<number> {
  // BENCH_SOAK=<seconds>: the soak instead of the parts (bench/soak.ts; README "Soak").
  if (process.env.BENCH_SOAK) return runPartProcess('./soak.ts');
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

  // Bounded in time whatever happens. Decisions: rounds x 9 runs (3 servers x max, rate, probe), warm-ups, start-up and cleanup
  // slack. Slack: start-ups, warm-up, the ack run, and every time-to-effect measurement timing out.
  // Approvals: start-ups, the sample, the run and the whole drain. Packets: start-ups, seeding,
  // and every run timing out.
  const decisionBudget = ROUNDS * 9 * (DURATION + 3) + 3 * (WARMUP + 3) + TTE_CYCLES * 11 + 120;
  const slackBudget = slackBudgetSeconds({ duration: DURATION, warmup: WARMUP, tteAgents: TTE_AGENTS });
  const approvalsBudget = approvalsBudgetSeconds({ duration: DURATION, drain: APPROVALS_DRAIN });
  const packetsBudget = packetsBudgetSeconds({ runs: PACKET_RUNS });
  const budgetSeconds =
    (PARTS.decisions ? decisionBudget : 0) + (PARTS.slack ? slackBudget : 0) + (PARTS.approvals ? approvalsBudget : 0) + (PARTS.packets ? packetsBudget : 0) + (PARTS.sdk ? SDK_BUDGET_SECONDS : 0) + (PARTS.scale ? SCALE_BUDGET_SECONDS : 0);
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
    if (PARTS.packets) console.log(`${PARTS.decisions || PARTS.slack || PARTS.approvals ? 'then ' : ''}packets: trust packets for an agent with five years of evidence, built in process, over REST and in Slack`);
    if (PARTS.sdk) console.log(`${PARTS.decisions || PARTS.slack || PARTS.approvals || PARTS.packets ? 'then ' : ''}sdk: the agent SDK's local check(), containment to check() deny across instances, 1,000 stream clients on one instance`);
    if (PARTS.scale) console.log(`${PARTS.decisions || PARTS.slack || PARTS.approvals || PARTS.packets || PARTS.sdk ? 'then ' : ''}scale: registrations/s with 16 clients, import of 100,000, fleet containment of 10,000, restart-to-ready and RSS with 100,000 agents, audit verify at 1,000,000 entries`);
    console.log(`node ${process.version}, ${cpus().length} CPU(s) (${cpus()[0]?.model.trim() ?? 'unknown'}), ${new Date().toISOString()}`);
    console.log(`load average ${loadAvg()} (other work on the machine skews results; compare rows of the same run)`);
    if (PARTS.decisions) {
      console.log(`rounds ${ROUNDS}, ${DURATION} s per run (latencies of its first ${Math.min(SKIP, DURATION - 1)} s not counted), ${WARMUP} s warm-up per server${CPU_PROF ? `, CPU profiles of both servers into ${path.join(PROFILE_DIR, runId)}` : ''}`);
    }
    if (PARTS.slack) {
      console.log(`slack: /armalo status at ${fmtInt(SLACK_RATE)}/s for ${DURATION} s with contain+restore pairs beside it (after ${WARMUP} s of warm-up commands), then time-to-effect on ${TTE_AGENTS} agent(s)`);
    }
    if (PARTS.approvals) {
      console.log(`approvals: POST /v1/approval-requests at ${fmtInt(APPROVALS_RATE)}/s for ${DURATION} s, then up to ${APPROVALS_DRAIN} s for the remaining cards${APPROVALS_DECISION_RATE ? `; decisions at ${fmtInt(APPROVALS_DECISION_RATE)}/s on the same instance throughout` : ''}`);
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

    tempDir = mkdtempSync(path.join(tmpdir(), 'armalo-bench-'));
    if (PARTS.decisions) await decisionPart({ databaseUrl, prefix, token, tempDir, children: decisionChildren, profileArgs });

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
        decisionRate: APPROVALS_DECISION_RATE,
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
    if (PARTS.sdk) {
      if (PARTS.decisions || PARTS.slack || PARTS.approvals || PARTS.packets) console.log('');
      const code = await runPartProcess('./sdk.ts');
      if (code !== 0 || !PARTS.scale) return code;
    }
    if (PARTS.scale) {
      if (PARTS.decisions || PARTS.slack || PARTS.approvals || PARTS.packets || PARTS.sdk) console.log('');
      return await runPartProcess('./scale.ts');
    }
    return 0;
  } finally {
    await cleanup();
    clearTimeout(watchdog);
  }
}

/** Generous: the SDK part's own run is about a minute and a half (check, time-to-effect, 1,000 clients). */
const SDK_BUDGET_SECONDS = 300;

/** Generous: the scale part seeds 100,000 agents and 1,000,000 audit entries, and runs the fleet bench (about 8 minutes on two cores). */
const SCALE_BUDGET_SECONDS = 1200;

/**
 * The agent SDK part (issue 12, bench/sdk.ts; sdk/README.md, "Speed") and the scale part (issue 17,
 * bench/scale.ts), each in its own process with its own database, instances and Redis prefix. Its
 * table and goal lines print here; its exit code is ours.
 */
function runPartProcess(script: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(script, import.meta.url))], { stdio: 'inherit', env: process.env });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
