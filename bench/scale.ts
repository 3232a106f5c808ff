/**
 * The scale part (issue 17): `BENCH_ONLY=scale npm run bench`, or on its own `npx tsx bench/scale.ts`
 * (SCALE_BENCH_PARTS=writes,import,fleet,start,memory,verify to choose; Postgres and Redis as for the tests).
 *
 * 1. writes: one instance (role all, the bench policy); 16 clients register agents with 3 grants
 *    each through `PUT /v1/agents/{id}`, then contain them (`POST …/actions`). Goal: at least
 *    1,000 registrations/s. With SCALE_BENCH_COMPARE=<another checkout of this repository> the
 *    same measurement runs first against that checkout's code (its own database), so the ratio
 *    comes from one run on one machine.
 * 1b. import: 100,000 agents (3 grants each) in one streamed `POST /v1/agents:import`; time and
 *    agents/s. Goal: under a minute.
 * 1c. fleet: `bench/fleet.ts` in its own process (10,000 agents, `FLEET_BENCH_AGENTS`): a
 *    containment by selector on instance A until replica B denies every agent it contained, from
 *    the request. Goal: well under 2 s (counted as met under 2 s). Its own table is printed too.
 * 2. start: 100,000 agents (3 grants each, some contained) written with SQL; the view's own load
 *    timed in this process (wall and CPU, and the bytes each loaded agent retains after a full GC);
 *    then the time from starting an instance to its first `/readyz` 200, with plain node on the
 *    built JavaScript as `npm start` runs it (bench/lib/compiled-instance.ts), and under tsx as the
 *    other parts run it (SCALE_BENCH_TSX=0 skips that). Goals: the view loads in under 3 s, and a
 *    process is ready in under 5 s.
 * 3. memory: RSS of those instances with 100,000 agents, and RSS per 1,000 agents (against an
 *    instance started on an empty database). Goal: under 400 MB with 100,000 agents.
 * 4. verify: 1,000,000 audit entries written with SQL (hashes computed here, in order), a
 *    checkpoint, 1,000 more entries through the API; `GET /v1/audit/verify` (from the checkpoint)
 *    and `?full=true` (the whole chain). No goal set beyond "incremental follows new entries".
 */
import { randomBytes } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent as HttpAgent, request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createDb } from '../src/db/database.js';
import type * as DatabaseModuleNs from '../src/db/database.js';
import type * as AuditModuleNs from '../src/audit/audit.repository.js';

type DatabaseModule = typeof DatabaseModuleNs;
type AuditModule = typeof AuditModuleNs;
import { loadAllAgents } from '../src/agents/agents.repository.js';
import { createTestDatabase, REDIS_URL, testPrefix, type TestDatabase } from '../test/support/database.js';
import { seedAuditEntries, seedFleet } from '../test/support/fleet.js';
import { ROOT, appEnv, startChild, type ServerChild } from './lib/children.js';
import { buildCompiled, startCompiled, type CompiledInstance } from './lib/compiled-instance.js';
import { INSTANCE_NODE_FLAGS, mb, writeBenchPolicy } from './lib/instance.js';
import { deleteRedisPrefix } from './lib/redis-cleanup.js';
import { table } from './lib/stats.js';

const PARTS = new Set((process.env.SCALE_BENCH_PARTS ?? 'writes,import,fleet,start,memory,verify').split(',').map((s) => s.trim()));
const CLIENTS = Number(process.env.SCALE_BENCH_CLIENTS ?? 16);
const WRITE_AGENTS = Number(process.env.SCALE_BENCH_WRITE_AGENTS ?? 10_000);
const START_AGENTS = Number(process.env.SCALE_BENCH_START_AGENTS ?? 100_000);
const IMPORT_AGENTS = Number(process.env.SCALE_BENCH_IMPORT_AGENTS ?? 100_000);
/** Sequential imports the agents are split into (1: one import; an import must arrive within the server's 60 s request timeout). */
const IMPORT_REQUESTS = Math.max(1, Number(process.env.SCALE_BENCH_IMPORT_REQUESTS ?? 1));
const AUDIT_ENTRIES = Number(process.env.SCALE_BENCH_AUDIT_ENTRIES ?? 1_000_000);
const COMPARE_ROOT = process.env.SCALE_BENCH_COMPARE;
const HOST = '127.0.0.1';
const TOKEN = `tok_${randomBytes(12).toString('hex')}`;

const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
const goals: string[][] = [];
const cleanups: (() => Promise<unknown>)[] = [];

// ---- HTTP ------------------------------------------------------------------------------------------

interface Answer {
  status: number;
  body: string;
}

function call(agent: HttpAgent, port: number, method: string, urlPath: string, body?: unknown, timeoutMs = 30_000): Promise<Answer> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<Answer>((resolve, reject) => {
    const req = request(
      {
        host: HOST,
        port,
        method,
        path: urlPath,
        agent,
        headers: { authorization: `Bearer ${TOKEN}`, ...(data ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(data)) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`no answer from ${method} ${urlPath} within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(data);
  });
}

/** Runs `count` requests from `clients` concurrent clients; returns requests/s and the failures. */
async function closedLoop(count: number, clients: number, one: (i: number, agent: HttpAgent) => Promise<Answer>, ok: (a: Answer) => boolean): Promise<{ perSecond: number; seconds: number; failed: number; firstFailure?: string }> {
  let next = 0;
  let failed = 0;
  let firstFailure: string | undefined;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = next++; i < count; i = next++) {
          const a = await one(i, agent).catch((err: Error) => ({ status: 0, body: err.message }));
          if (!ok(a)) {
            failed++;
            firstFailure ??= `${a.status} ${a.body.slice(0, 300)}`;
          }
        }
      } finally {
        agent.destroy();
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { perSecond: count / seconds, seconds, failed, firstFailure };
}

// ---- instances -------------------------------------------------------------------------------------

let tmp = '';
let policyFile = '';

async function startInstance(name: string, databaseUrl: string, queuePrefix: string, root = ROOT, extra: Record<string, string> = {}): Promise<ServerChild> {
  const env = appEnv({ databaseUrl, redisUrl: REDIS_URL, host: HOST, queuePrefix, apiToken: TOKEN }, 'all', { ARMALO_POLICY_FILE: policyFile, ...extra });
  env.ARMALO_API_TOKENS = `bench:${TOKEN}`;
  const prof = process.env.SCALE_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.join(ROOT, 'bench', '.profiles', `scale-${name}`)}`] : [];
  const child = await startChild(name, path.join(root, 'bench', 'servers', 'app-server.ts'), env, { execArgv: [...INSTANCE_NODE_FLAGS, ...prof], startTimeoutMs: 120_000 });
  cleanups.push(() => child.stop());
  return child;
}

async function database(migrateWith?: string): Promise<TestDatabase> {
  const db = await createTestDatabase({ migrate: migrateWith === undefined });
  cleanups.push(() => db.drop());
  if (migrateWith !== undefined) {
    execFileSync(process.execPath, ['--import', 'tsx', path.join(migrateWith, 'src', 'cli', 'migrate.ts')], { cwd: ROOT, env: { ...process.env, DATABASE_URL: db.url }, stdio: 'ignore' });
  }
  return db;
}

function prefix(): string {
  const p = testPrefix();
  cleanups.push(() => deleteRedisPrefix(REDIS_URL, p));
  return p;
}

// ---- 1. writes -------------------------------------------------------------------------------------

const registration = (i: number) => ({
  name: `Fleet agent ${i}`,
  owner: `owner${i % 200}@example.com`,
  riskTier: (['low', 'medium', 'high'] as const)[i % 3],
  grants: [
    { scope: 'payments:transfer', constraints: { maxAmount: 10_000 + i } },
    { scope: 'crm:read' },
    { scope: 'mail:send', keepInContainment: true },
  ],
});

interface WriteFigures {
  registrations: number;
  contains: number;
  rss: number;
}

async function measureWrites(label: string, root: string, databaseUrl: string): Promise<WriteFigures> {
  const app = await startInstance(`${label}`, databaseUrl, prefix(), root);
  try {
    const warm = await closedLoop(200, CLIENTS, (i, a) => call(a, app.port, 'PUT', `/v1/agents/warm-${i}`, registration(i)), (a) => a.status === 200 || a.status === 201);
    if (warm.failed) throw new Error(`${label}: warm-up registrations failed (${warm.failed}): ${warm.firstFailure}`);
    const cpu0 = await app.cpuUsage();
    const reg = await closedLoop(WRITE_AGENTS, CLIENTS, (i, a) => call(a, app.port, 'PUT', `/v1/agents/fleet-${i}`, registration(i)), (a) => a.status === 201);
    const cpu1 = await app.cpuUsage();
    const cpuMs = (a: typeof cpu0, b: typeof cpu0, n: number) => `${((b.user + b.system - a.user - a.system) / 1000 / n).toFixed(2)} (user ${((b.user - a.user) / 1000 / n).toFixed(2)})`;
    console.log(`${label}: ${WRITE_AGENTS} registrations from ${CLIENTS} clients in ${reg.seconds.toFixed(1)} s: ${reg.perSecond.toFixed(0)}/s, app CPU ${cpuMs(cpu0, cpu1, WRITE_AGENTS)} ms each, failed ${reg.failed}${reg.firstFailure ? ` (${reg.firstFailure})` : ''}`);
    const containCount = Math.min(WRITE_AGENTS, Number(process.env.SCALE_BENCH_CONTAINS ?? 3000));
    const cpu2 = await app.cpuUsage();
    const con = await closedLoop(
      containCount,
      CLIENTS,
      (i, a) => call(a, app.port, 'POST', `/v1/agents/fleet-${i}/actions`, { action: 'contain', reason: 'bench' }),
      (a) => a.status === 200 || a.status === 201,
    );
    const cpu3 = await app.cpuUsage();
    console.log(`${label}: ${containCount} contains from ${CLIENTS} clients in ${con.seconds.toFixed(1)} s: ${con.perSecond.toFixed(0)}/s, app CPU ${cpuMs(cpu2, cpu3, containCount)} ms each, failed ${con.failed}${con.firstFailure ? ` (${con.firstFailure})` : ''}`);
    const verify = await call(new HttpAgent(), app.port, 'GET', '/v1/audit/verify?full=true', undefined, 120_000);
    const v = JSON.parse(verify.body) as { ok: boolean; entries: number };
    if (!v.ok) throw new Error(`${label}: the audit chain does not verify after the write run: ${verify.body.slice(0, 300)}`);
    const usage = await app.cpuUsage();
    if (reg.failed || con.failed) throw new Error(`${label}: ${reg.failed + con.failed} writes failed`);
    return { registrations: reg.perSecond, contains: con.perSecond, rss: usage.rss };
  } finally {
    await app.stop();
  }
}

/**
 * The audited write alone, without HTTP or the app: 16 connections each appending audit entries
 * (one transaction per entry, as every state change does) for a few seconds, with the given
 * checkout's own `createDb` and `appendAudit`. Shows what the head lock allows, apart from the
 * app's CPU.
 */
async function auditAppendsPerSecond(root: string, databaseUrl: string, seconds = 5): Promise<number> {
  const dbMod = (await import(pathToFileURL(path.join(root, 'src', 'db', 'database.ts')).href)) as DatabaseModule;
  const auditMod = (await import(pathToFileURL(path.join(root, 'src', 'audit', 'audit.repository.ts')).href)) as AuditModule;
  const db = dbMod.createDb(databaseUrl, { max: CLIENTS });
  let count = 0;
  const until = performance.now() + seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        while (performance.now() < until) {
          await db.transaction().execute((trx) => auditMod.appendAudit(trx, { actor: 'api:bench', action: 'agent.contain', subject: `client-${c}`, payload: { n: count }, at: new Date() }));
          count++;
        }
      }),
    );
  } finally {
    await db.destroy();
  }
  return count / seconds;
}

async function writesPart(): Promise<void> {
  let before: WriteFigures | undefined;
  if (COMPARE_ROOT) {
    const db = await database(COMPARE_ROOT);
    before = await measureWrites('before', COMPARE_ROOT, db.url);
  }
  const db = await database();
  const after = await measureWrites('after', ROOT, db.url);
  const appendsAfter = await auditAppendsPerSecond(ROOT, db.url);
  let appendsBefore: number | undefined;
  if (COMPARE_ROOT) {
    const old = await database(COMPARE_ROOT);
    appendsBefore = await auditAppendsPerSecond(COMPARE_ROOT, old.url);
  }
  console.log(`writes: audited appends alone (${CLIENTS} connections, one transaction each): ${appendsAfter.toFixed(0)}/s${appendsBefore !== undefined ? `; compared build ${appendsBefore.toFixed(0)}/s` : ''}`);
  const ratio = (x: number, y: number | undefined) => (y ? ` (${(x / y).toFixed(1)}x the compared build: ${y.toFixed(0)}/s)` : '');
  goals.push([`registrations/s, ${CLIENTS} clients, 3 grants each >= 1,000`, verdict(after.registrations >= 1000), `${after.registrations.toFixed(0)}/s${ratio(after.registrations, before?.registrations)}`]);
  goals.push([`audited appends/s, ${CLIENTS} connections, no app (reported)`, 'n/a', `${appendsAfter.toFixed(0)}/s${ratio(appendsAfter, appendsBefore)}`]);
  goals.push([`contains/s, ${CLIENTS} clients (reported)`, 'n/a', `${after.contains.toFixed(0)}/s${ratio(after.contains, before?.contains)}`]);
}

// ---- import -----------------------------------------------------------------------------------------

/**
 * `POST /v1/agents:import` of IMPORT_AGENTS agents (3 grants each, the writes part's registrations)
 * as one streamed NDJSON body, written in chunks as the server takes them; timed from the first
 * byte sent to the answer. Then the whole audit chain must verify and hold one entry per agent.
 */
/** One streamed import of agents `from` to `to` (exclusive), written as the server takes it. */
function importLines(port: number, from: number, to: number): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const req = request(
      { host: HOST, port, method: 'POST', path: '/v1/agents:import', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-ndjson' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    let i = from;
    const write = () => {
      while (i < to) {
        const lines: string[] = [];
        for (const end = Math.min(to, i + 200); i < end; i++) lines.push(JSON.stringify({ id: `import-${i}`, ...registration(i) }));
        if (!req.write(`${lines.join('\n')}\n`)) {
          req.once('drain', write);
          return;
        }
      }
      req.end();
    };
    write();
  });
}

async function importPart(): Promise<void> {
  let before: { seconds: number; cpuMs: number } | undefined;
  if (COMPARE_ROOT) before = await measureImport('import-before', COMPARE_ROOT);
  const after = await measureImport('import', ROOT);
  const compared = before ? `; compared build ${before.seconds.toFixed(1)} s, ${(before.cpuMs / IMPORT_AGENTS).toFixed(2)} ms each` : '';
  goals.push([
    `import of ${IMPORT_AGENTS.toLocaleString('en-US')} agents < 60 s`,
    verdict(after.seconds < 60),
    `${after.seconds.toFixed(1)} s (${(IMPORT_AGENTS / after.seconds).toFixed(0)} agents/s; ${(after.cpuMs / IMPORT_AGENTS).toFixed(2)} ms app CPU each${compared})`,
  ]);
}

async function measureImport(label: string, root: string): Promise<{ seconds: number; cpuMs: number }> {
  const db = await database(root === ROOT ? undefined : root);
  const app = await startInstance(label, db.url, prefix(), root);
  try {
    const cpu0 = await app.cpuUsage();
    const started = performance.now();
    const per = Math.ceil(IMPORT_AGENTS / IMPORT_REQUESTS);
    let applied = 0;
    let refused = 0;
    for (let from = 0; from < IMPORT_AGENTS; from += per) {
      const answer = await importLines(app.port, from, Math.min(IMPORT_AGENTS, from + per));
      if (answer.status !== 200) throw new Error(`import: ${answer.status} ${answer.body.slice(0, 300)}`);
      const result = JSON.parse(answer.body) as { applied: number; refusedCount: number };
      applied += result.applied;
      refused += result.refusedCount;
    }
    const seconds = (performance.now() - started) / 1000;
    const cpu1 = await app.cpuUsage();
    if (applied !== IMPORT_AGENTS || refused !== 0) throw new Error(`import: applied ${applied} of ${IMPORT_AGENTS}, refused ${refused}`);
    const cpuMs = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / 1000;
    console.log(`${label}: ${IMPORT_AGENTS.toLocaleString('en-US')} agents (3 grants each, ${IMPORT_REQUESTS} import${IMPORT_REQUESTS > 1 ? 's' : ''}) in ${seconds.toFixed(1)} s: ${(IMPORT_AGENTS / seconds).toFixed(0)} agents/s, app CPU ${(cpuMs / IMPORT_AGENTS).toFixed(2)} ms per agent`);
    const verify = await call(new HttpAgent(), app.port, 'GET', '/v1/audit/verify?full=true', undefined, 600_000);
    const v = JSON.parse(verify.body) as { ok: boolean; entries: number };
    if (!v.ok || v.entries < IMPORT_AGENTS) throw new Error(`import: the audit chain does not verify with one entry per agent: ${verify.body.slice(0, 300)}`);
    return { seconds, cpuMs };
  } finally {
    await app.stop();
  }
}

// ---- 2 and 3. start and memory ---------------------------------------------------------------------

async function waitReady(port: number, timeoutMs = 60_000): Promise<void> {
  const agent = new HttpAgent({ keepAlive: false });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const a = await call(agent, port, 'GET', '/readyz').catch(() => ({ status: 0, body: '' }));
      if (a.status === 200) return;
      if (Date.now() > deadline) throw new Error(`/readyz did not answer 200 within ${timeoutMs} ms (last: ${a.status} ${a.body.slice(0, 200)})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    agent.destroy();
  }
}

async function settledRss(app: ServerChild): Promise<{ rss: number; heapUsed: number }> {
  // Give the load's garbage a moment to be collected, then take the lower of a few readings.
  let best = { rss: Infinity, heapUsed: Infinity };
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 600));
    const u = await app.cpuUsage();
    if (u.rss < best.rss) best = { rss: u.rss, heapUsed: u.heapUsed };
  }
  return best;
}

/** The same for a compiled instance (RSS only: it has no IPC channel). */
async function settledCompiledRss(app: CompiledInstance): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 600));
    best = Math.min(best, app.rss());
  }
  return best;
}

/** A full GC in this process (the flag set at run time; `gc` taken from a fresh context). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** One view load in this process: wall and CPU time (the agents are dropped when it returns). */
async function timedLoad(client: ReturnType<typeof createDb>): Promise<{ ms: number; cpuMs: number }> {
  const t = performance.now();
  const c = process.cpuUsage();
  const held = new Map<string, unknown>();
  await loadAllAgents(client, (page) => {
    for (const a of page) held.set(a.id, a);
  });
  const ms = performance.now() - t;
  const used = process.cpuUsage(c);
  if (held.size !== START_AGENTS) throw new Error(`the view load read ${held.size} agents, not ${START_AGENTS}`);
  return { ms, cpuMs: (used.user + used.system) / 1000 };
}

/** The V8 heap the loaded agents keep, per agent, between two full GCs. */
async function retainedBytesPerAgent(client: ReturnType<typeof createDb>): Promise<number> {
  collectGarbage();
  const before = process.memoryUsage().heapUsed;
  const held = new Map<string, unknown>();
  await loadAllAgents(client, (page) => {
    for (const a of page) held.set(a.id, a);
  });
  collectGarbage();
  const after = process.memoryUsage().heapUsed;
  // `held` is used after the GC, so it is still alive when the heap is read.
  return (after - before) / held.size;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function startAndMemoryPart(): Promise<void> {
  const withTsx = process.env.SCALE_BENCH_TSX !== '0';
  const t0 = performance.now();
  const main = await buildCompiled();
  console.log(`start: built the app's JavaScript for plain node (esbuild, as npm start runs dist/) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const compiledEnv = (databaseUrl: string) => {
    const env = appEnv({ databaseUrl, redisUrl: REDIS_URL, host: HOST, queuePrefix: prefix(), apiToken: TOKEN }, 'all', { ARMALO_POLICY_FILE: policyFile });
    env.ARMALO_API_TOKENS = `bench:${TOKEN}`;
    return env;
  };

  const empty = await database();
  const emptyCompiled = await startCompiled('empty-node', main, compiledEnv(empty.url), INSTANCE_NODE_FLAGS);
  const baseCompiled = await settledCompiledRss(emptyCompiled);
  await emptyCompiled.stop();
  let base = { rss: 0, heapUsed: 0 };
  if (withTsx) {
    const emptyApp = await startInstance('empty', empty.url, prefix());
    await waitReady(emptyApp.port);
    base = await settledRss(emptyApp);
    await emptyApp.stop();
  }

  const db = await database();
  const client = createDb(db.url, { max: 2 });
  const seedStart = performance.now();
  try {
    await seedFleet(client, START_AGENTS);
    console.log(`start: seeded ${START_AGENTS.toLocaleString('en-US')} agents (3 grants each, every tenth contained) with SQL in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);
    // What the loaded agents retain, after a full GC (a Map stands for the view's own), then the
    // view's own load timed in this process: the same streamed read a replica does at start.
    const retainedPerAgent = await retainedBytesPerAgent(client);
    const loads: number[] = [];
    const loadCpu: number[] = [];
    for (let i = 0; i < 3; i++) {
      const { ms, cpuMs } = await timedLoad(client);
      loads.push(ms);
      loadCpu.push(cpuMs);
    }
    console.log(`start: view load ${loads.map((x) => x.toFixed(0)).join(' / ')} ms (CPU of this process ${loadCpu.map((x) => x.toFixed(0)).join(' / ')} ms); the agents retain ${retainedPerAgent.toFixed(0)} bytes each after a full GC`);

    // Restart to ready: a replica process started with the fleet in place, until /readyz answers 200.
    const compiled: { ready: number; cpu: number }[] = [];
    let rssCompiled = 0;
    for (let i = 0; i < 2; i++) {
      const app = await startCompiled(`fleet-node-${i}`, main, compiledEnv(db.url), INSTANCE_NODE_FLAGS);
      compiled.push({ ready: app.readyMs, cpu: app.cpuAtReadyMs });
      if (i === 1) rssCompiled = await settledCompiledRss(app);
      await app.stop();
    }
    console.log(`start (node, compiled): process start to /readyz 200 ${compiled.map((x) => x.ready.toFixed(0)).join(' / ')} ms, using ${compiled.map((x) => x.cpu.toFixed(0)).join(' / ')} ms of CPU; RSS ${mb(baseCompiled)} MB empty, ${mb(rssCompiled)} MB with the fleet`);
    const restarts: number[] = [];
    let rss = { rss: 0, heapUsed: 0 };
    if (withTsx) {
      for (let i = 0; i < 2; i++) {
        const t = performance.now();
        const app = await startInstance(`fleet-${i}`, db.url, prefix());
        await waitReady(app.port);
        restarts.push(performance.now() - t);
        if (i === 1) rss = await settledRss(app);
        await app.stop();
      }
      console.log(`start (tsx): process start to /readyz 200 ${restarts.map((x) => x.toFixed(0)).join(' / ')} ms`);
    }
    const best = compiled.reduce((a, b) => (b.ready < a.ready ? b : a));
    const n = START_AGENTS.toLocaleString('en-US');
    if (PARTS.has('start')) {
      goals.push([`view load, ${n} agents < 3 s`, verdict(median(loads) < 3000), `${secs(median(loads))} (median of 3; ${secs(median(loadCpu))} of CPU)`]);
      goals.push([`restart to ready, ${n} agents < 5 s`, verdict(best.ready < 5000), `${secs(best.ready)} (best of 2, node as npm start; ${secs(best.cpu)} of CPU)`]);
      if (withTsx) goals.push([`restart to ready under tsx (reported)`, 'n/a', `${secs(Math.min(...restarts))} (best of 2)`]);
    }
    if (PARTS.has('memory')) {
      goals.push([`RSS with ${n} agents < 400 MB`, verdict(rssCompiled < 400 * 1024 * 1024), `${mb(rssCompiled)} MB (${mb(baseCompiled)} MB empty; node as npm start)`]);
      goals.push(['view: bytes per agent retained (reported)', 'n/a', `${retainedPerAgent.toFixed(0)} B (after a full GC, in the bench process)`]);
      goals.push(['RSS per 1,000 agents (reported)', 'n/a', `${((((rssCompiled - baseCompiled) / START_AGENTS) * 1000) / 1024).toFixed(0)} KB (node)`]);
      if (withTsx) {
        console.log(`memory (tsx): RSS ${mb(base.rss)} MB with no agents, ${mb(rss.rss)} MB with ${n}; V8 heap ${mb(base.heapUsed)} → ${mb(rss.heapUsed)} MB (${((rss.heapUsed - base.heapUsed) / START_AGENTS).toFixed(0)} bytes per agent)`);
        goals.push([`RSS under tsx (reported)`, 'n/a', `${mb(rss.rss)} MB (${mb(base.rss)} MB empty)`]);
      }
    }
  } finally {
    await client.destroy();
  }
}

// ---- 4. verify -------------------------------------------------------------------------------------

async function verifyPart(): Promise<void> {
  const db = await database();
  const client = createDb(db.url, { max: 2 });
  try {
    const t0 = performance.now();
    await seedAuditEntries(client, AUDIT_ENTRIES);
    console.log(`verify: seeded ${AUDIT_ENTRIES.toLocaleString('en-US')} audit entries (hashed in order here, inserted with SQL) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    await client.destroy();
  }
  const app = await startInstance('verify', db.url, prefix());
  const agent = new HttpAgent({ keepAlive: true });
  const timed = async (urlPath: string) => {
    const t = performance.now();
    const a = await call(agent, app.port, 'GET', urlPath, undefined, 600_000);
    const ms = performance.now() - t;
    const body = JSON.parse(a.body) as { ok: boolean; checked: number; entries: number; checkpointed?: unknown };
    if (a.status !== 200 || !body.ok) throw new Error(`${urlPath}: ${a.status} ${a.body.slice(0, 300)}`);
    return { ms, body };
  };
  try {
    const first = await timed('/v1/audit/verify');
    console.log(`verify: first verify (no checkpoint yet) walked ${first.body.checked} entries in ${(first.ms / 1000).toFixed(1)} s and recorded a checkpoint`);
    // 1,000 new entries after the checkpoint: the incremental verify walks only those.
    const c2 = createDb(db.url, { max: 1 });
    await seedAuditEntries(c2, 1000).finally(() => c2.destroy());
    const inc = await timed('/v1/audit/verify');
    const full = await timed('/v1/audit/verify?full=true');
    console.log(`verify: incremental ${inc.body.checked} entries in ${inc.ms.toFixed(0)} ms; full ${full.body.checked} entries in ${(full.ms / 1000).toFixed(1)} s`);
    goals.push([`verify from the checkpoint, ${AUDIT_ENTRIES.toLocaleString('en-US')} + 1,000 entries (reported)`, 'n/a', `${inc.ms.toFixed(0)} ms (${inc.body.checked} walked)`]);
    goals.push([`verify ?full=true, ${(AUDIT_ENTRIES + 1000).toLocaleString('en-US')} entries (reported)`, 'n/a', `${(full.ms / 1000).toFixed(1)} s`]);
  } finally {
    agent.destroy();
    await app.stop();
  }
}

// ---- 1c. fleet containment -------------------------------------------------------------------------

/** bench/fleet.ts in its own process (it starts its own instances); its medians come back as JSON. */
async function fleetPart(): Promise<void> {
  const out = path.join(tmp, 'fleet.json');
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'fleet.ts')], { stdio: 'inherit', env: { ...process.env, FLEET_BENCH_JSON: out, FLEET_BENCH_COMPARE: '' } });
    child.on('exit', (c) => resolve(c ?? 1));
  });
  if (code !== 0) throw new Error(`bench/fleet.ts exited with ${code}`);
  const r = JSON.parse(readFileSync(out, 'utf8')) as { agents: number; count: number; denied: number; answeredMs: number; seenMs: number };
  const all = r.denied === r.agents;
  goals.push([
    `bulk contain of ${r.agents.toLocaleString('en-US')} agents: another instance denies all < 2 s`,
    verdict(all && r.seenMs < 2000),
    `${secs(r.seenMs)} from the request (${r.count.toLocaleString('en-US')} contained, A answered in ${secs(r.answeredMs)}; ${r.denied} of ${r.agents} denied)`,
  ]);
}

// ---- main ------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  tmp = mkdtempSync(path.join(tmpdir(), 'armalo-scale-'));
  cleanups.push(async () => rmSync(tmp, { recursive: true, force: true }));
  policyFile = writeBenchPolicy(tmp);
  console.log(`scale: ${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; parts: ${[...PARTS].join(', ')}`);
  try {
    if (PARTS.has('writes')) await writesPart();
    if (PARTS.has('import')) await importPart();
    if (PARTS.has('fleet')) await fleetPart();
    if (PARTS.has('start') || PARTS.has('memory')) await startAndMemoryPart();
    if (PARTS.has('verify')) await verifyPart();
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
  }
  console.log('');
  console.log(`scale goals (${cpus().length} cores)`);
  console.log(table([['goal', 'verdict', 'measured']], goals));
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
