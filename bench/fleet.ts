/**
 * Fleet containment (issue 17, item 3): `npx tsx bench/fleet.ts` (Postgres and Redis as for the tests;
 * FLEET_BENCH_AGENTS to change the fleet size, default 10,000).
 *
 * Two instances on one database: A (role all) takes `POST /v1/actions {selector: {scope: "payments:*"},
 * action: "contain"}`; B (role web, a replica) answers decisions. Measured from the moment the request
 * is sent: when A answers, and when B denies every contained agent. "B denies all of them" is read
 * through B's own view: a decision with `atLeastVersion` = the version the fleet action committed is
 * answered only by a view holding every change up to it (versions follow commit order), so the first
 * such decision that is not `view_behind` marks the moment B holds all of them; then every agent is
 * asked once on B to confirm each is denied (not timed). For comparison, the same time-to-effect for a
 * single-agent contain in the same run. Then the restore by the same selector.
 *
 * FLEET_BENCH_COMPARE=<another checkout of this repository> runs the same scenario first with that
 * checkout's acting instance A (replica B is always this checkout's), each on a fresh database, and
 * prints both columns: the baseline measured in the same run. FLEET_BENCH_ROUNDS=<n> alternates the
 * builds n times and prints medians. Profile A with BENCH_NODE_FLAGS="--max-semi-space-size=2
 * --cpu-prof --cpu-prof-dir=<dir>" and `npx tsx bench/profile-summary.ts <file>`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { createDb } from '../src/db/database.js';
import { createTestDatabase, REDIS_URL, testPrefix } from '../test/support/database.js';
import { fleetId, seedFleet } from '../test/support/fleet.js';
import { ROOT, appEnv, startChild, type ServerChild } from './lib/children.js';
import { INSTANCE_NODE_FLAGS, writeBenchPolicy } from './lib/instance.js';
import { deleteRedisPrefix } from './lib/redis-cleanup.js';
import { median, table } from './lib/stats.js';

const AGENTS = Number(process.env.FLEET_BENCH_AGENTS ?? 10_000);
/** FLEET_BENCH_COMPARE=<another checkout of this repository>: the same run with that checkout's acting instance first. */
const COMPARE_ROOT = process.env.FLEET_BENCH_COMPARE;
/** FLEET_BENCH_ROUNDS: rounds of each build, alternating (medians are printed). */
const ROUNDS = Math.max(1, Number(process.env.FLEET_BENCH_ROUNDS ?? 1));
/** FLEET_BENCH_JSON=<file>: also write this build's medians there (the scale part of `npm run bench` reads them). */
const JSON_OUT = process.env.FLEET_BENCH_JSON;
const HOST = '127.0.0.1';
const TOKEN = `tok_${randomBytes(12).toString('hex')}`;
const cleanups: (() => Promise<unknown>)[] = [];

/** A JSON answer, read loosely: the bench only looks at a few fields. */
type Loose = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function call(agent: HttpAgent, port: number, method: string, urlPath: string, body?: unknown, timeoutMs = 600_000): Promise<{ status: number; body: Loose }> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: HOST, port, method, path: urlPath, agent, headers: { authorization: `Bearer ${TOKEN}`, ...(data ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(data)) } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Loose = { text };
          try {
            parsed = JSON.parse(text) as Loose;
          } catch {
            // keep the text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`no answer from ${method} ${urlPath}`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(data);
  });
}

async function startInstance(name: string, role: 'all' | 'web', databaseUrl: string, queuePrefix: string, policyFile: string, root = ROOT): Promise<ServerChild> {
  const env = appEnv({ databaseUrl, redisUrl: REDIS_URL, host: HOST, queuePrefix, apiToken: TOKEN }, role, { ARMALO_POLICY_FILE: policyFile });
  const child = await startChild(name, path.join(root, 'bench', 'servers', 'app-server.ts'), env, { execArgv: INSTANCE_NODE_FLAGS, startTimeoutMs: 120_000 });
  cleanups.push(() => child.stop());
  return child;
}

/** Milliseconds from `start` until a decision on `replica` with atLeastVersion = version is no longer view_behind, and its answer. */
async function untilSeen(replica: ServerChild, http: HttpAgent, start: number, agentId: string, action: string, version: string): Promise<{ ms: number; decision: string }> {
  for (;;) {
    const res = await call(http, replica.port, 'POST', '/v1/decisions', { agentId, action, atLeastVersion: version });
    const codes: string[] = res.body.reasonCodes ?? [];
    // A replica failing closed (view_stale under load) says nothing about this change: ask again.
    if (!codes.includes('view_behind') && !codes.includes('view_stale')) return { ms: performance.now() - start, decision: `${res.body.decision}${codes.length ? ` ${codes.join(',')}` : ''}` };
    if (performance.now() - start > 120_000) throw new Error('the replica did not catch up within 120 s');
  }
}

/** What one build measured (milliseconds, counts). */
interface Run {
  singleAnswered: number;
  singleSeen: number;
  dryRun: number;
  dryCount: number;
  count: number;
  unchanged: number;
  answered: number;
  seen: number;
  denied: number;
  restoreCount: number;
  restoreAnswered: number;
  restoreSeen: number;
}

/**
 * One build on a fresh database: A (role all) from `root`, the acting instance whose code is
 * compared; replica B (role web) always this checkout's, so the replica's part is the same.
 */
async function measure(label: string, root: string, policyFile: string): Promise<Run> {
  const local: (() => Promise<unknown>)[] = [];
  const mark = cleanups.length;
  const database = await createTestDatabase();
  cleanups.push(() => database.drop());
  const prefix = testPrefix();
  cleanups.push(() => deleteRedisPrefix(REDIS_URL, prefix));
  try {
    const seedDb = createDb(database.url, { max: 2 });
    const seedStart = performance.now();
    // Every tenth seeded agent is contained already: the fleet action reports them, it does not contain them again.
    await seedFleet(seedDb, AGENTS);
    await seedDb.destroy();
    console.log(`[${label}] seeded ${AGENTS} agents in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);
    const a = await startInstance(`${label} A`, 'all', database.url, prefix, policyFile, root);
    const b = await startInstance(`${label} B`, 'web', database.url, prefix, policyFile);
    const http = new HttpAgent({ keepAlive: true, maxSockets: 4 });
    local.push(async () => http.destroy());
    const probe = fleetId(1);
    const warm = await call(http, b.port, 'POST', '/v1/decisions', { agentId: probe, action: 'crm:read' });
    if (warm.body.decision !== 'allow') throw new Error(`the replica should allow ${probe} before the contain: ${JSON.stringify(warm.body)}`);

    // Baseline, same run: one agent contained through the per-agent endpoint.
    const single = fleetId(AGENTS - 1);
    const s0 = performance.now();
    const one = await call(http, a.port, 'POST', `/v1/agents/${single}/actions`, { action: 'contain', reason: 'baseline' });
    const singleAnswered = performance.now() - s0;
    const singleSeen = (await untilSeen(b, http, s0, single, 'crm:read', one.body.version)).ms;

    const dry0 = performance.now();
    const dry = await call(http, a.port, 'POST', '/v1/actions', { selector: { scope: 'payments:*' }, action: 'contain', reason: 'bench', dryRun: true });
    const dryRun = performance.now() - dry0;

    const t0 = performance.now();
    const res = await call(http, a.port, 'POST', '/v1/actions', { selector: { scope: 'payments:*' }, action: 'contain', reason: 'bench: vendor compromised' });
    const answered = performance.now() - t0;
    if (res.status !== 201) throw new Error(`fleet contain failed: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    const last = [...(res.body.agents as string[])].pop()!;
    const seen = await untilSeen(b, http, t0, last, 'crm:read', res.body.version);

    // Not timed: every agent asked once on B.
    let denied = 0;
    for (let i = 1; i <= AGENTS; i++) {
      const d = await call(http, b.port, 'POST', '/v1/decisions', { agentId: fleetId(i), action: 'crm:read' });
      if (d.body.decision === 'deny') denied++;
    }

    const r0 = performance.now();
    const restored = await call(http, a.port, 'POST', '/v1/actions', { selector: { scope: 'payments:*' }, action: 'restore', reason: 'bench: patched' });
    const restoreAnswered = performance.now() - r0;
    const back = await untilSeen(b, http, r0, probe, 'crm:read', restored.body.version);
    return {
      singleAnswered,
      singleSeen,
      dryRun,
      dryCount: dry.body.count,
      count: res.body.count,
      unchanged: res.body.unchangedCount,
      answered,
      seen: seen.ms,
      denied,
      restoreCount: restored.body.count,
      restoreAnswered,
      restoreSeen: back.ms,
    };
  } finally {
    for (const c of local.reverse()) await c().catch(() => undefined);
    // This build's instances, database and queue prefix, before the next build starts.
    for (const c of cleanups.splice(mark).reverse()) await c().catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
  }
}

const ms = (x: number) => `${x.toFixed(0)} ms`;

async function main(): Promise<void> {
  const tmp = mkdtempSync(path.join(tmpdir(), 'armalo-fleet-'));
  cleanups.push(async () => rmSync(tmp, { recursive: true, force: true }));
  const policyFile = writeBenchPolicy(tmp);
  console.log(`fleet bench: ${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${AGENTS} agents${COMPARE_ROOT ? `; compared with ${COMPARE_ROOT}` : ''}`);
  const builds: { label: string; root: string }[] = [{ label: 'this', root: ROOT }];
  if (COMPARE_ROOT) builds.unshift({ label: 'before', root: COMPARE_ROOT });
  const runs: { label: string; run: Run }[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const build of builds) runs.push({ label: build.label, run: await measure(build.label, build.root, policyFile) });
    }
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
  }
  const of = (label: string, pick: (r: Run) => number) => median(runs.filter((r) => r.label === label).map((r) => pick(r.run)));
  const first = (label: string) => runs.find((r) => r.label === label)!.run;
  const rowsOf = (label: string): [string, string][] => {
    const r = first(label);
    return [
      ['single contain (1 agent): A answers', ms(of(label, (x) => x.singleAnswered))],
      ['single contain: replica B denies it', ms(of(label, (x) => x.singleSeen))],
      [`dry run (${r.dryCount} agents would change)`, ms(of(label, (x) => x.dryRun))],
      [`fleet contain (${r.count} agents, ${r.unchanged} already contained): A answers`, ms(of(label, (x) => x.answered))],
      ['fleet contain: replica B denies all of them (from the request)', ms(of(label, (x) => x.seen))],
      ['replica B denies (every agent asked once after)', `${r.denied} of ${AGENTS}`],
      [`restore by selector (${r.restoreCount} agents): A answers`, ms(of(label, (x) => x.restoreAnswered))],
      ['restore: replica B allows again (from the request)', ms(of(label, (x) => x.restoreSeen))],
    ];
  };
  console.log('');
  console.log(`fleet containment (${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; medians of ${ROUNDS} round${ROUNDS === 1 ? '' : 's'}; goal: B denies all 10,000 well under 2 s)`);
  const mine = rowsOf('this');
  if (JSON_OUT) {
    const r = first('this');
    writeFileSync(JSON_OUT, JSON.stringify({ agents: AGENTS, count: r.count, denied: r.denied, answeredMs: of('this', (x) => x.answered), seenMs: of('this', (x) => x.seen), restoreSeenMs: of('this', (x) => x.restoreSeen) }));
  }
  if (!COMPARE_ROOT) {
    console.log(table([['measure', 'result']], mine));
    return;
  }
  const before = rowsOf('before');
  console.log(table([['measure', 'before', 'this build']], mine.map(([label, value], i) => [label, before[i]![1], value])));
  const goal = of('this', (x) => x.seen);
  console.log(`time to deny all: ${(of('before', (x) => x.seen) / goal).toFixed(1)}x faster than before; ${goal < 2000 ? 'PASS' : 'MISS'} (goal < 2 s)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
