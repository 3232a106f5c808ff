/**
 * The soak (issue 15, "Load held"): `BENCH_SOAK=<seconds> npm run bench`. One instance as deployed
 * (`ARMALO_ROLE=all`, Slack against the fake Slack in its own process) takes decisions at a steady
 * rate for that long, with approval requests (each approved by its two approvers' signed Slack
 * clicks, so cards are posted and updated) and contain/restore cycles mixed in. Every
 * BENCH_SOAK_SAMPLE seconds it records the instance's RSS and V8 heap and the event-loop delay
 * (p50/p99/max of the interval, from the app's own /metrics). It prints a table, writes a chart to
 * `bench/.profiles/soak-<run>/soak.png`, and exits non-zero if RSS grew more than 10% after warm-up
 * (the mean of the last samples against the mean of the first samples after warm-up).
 *
 *   BENCH_SOAK=600 npm run bench                 # the issue's ten minutes
 *   BENCH_SOAK=120 BENCH_SOAK_RATE=300 npm run bench
 */
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import pg from 'pg';
import { Resvg } from '@resvg/resvg-js';
import { createDb, ensureDatabaseExists } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrator.js';
import { chartFonts } from '../src/packets/fonts.js';
import { escapeXml } from '../src/packets/score-chart.js';
import { ROOT, appEnv, startChild, type ServerChild } from './lib/children.js';
import { HttpPool } from './lib/http.js';
import { INSTANCE_NODE_FLAGS, mb } from './lib/instance.js';
import { deleteRedisPrefix } from './lib/redis-cleanup.js';
import { table } from './lib/stats.js';

const HOST = '127.0.0.1';
const PG_BASE = `postgres://postgres@${HOST}:5432`;
const REDIS_URL = `redis://${HOST}:6379`;
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

function intFromEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
  return n;
}

const DURATION_S = intFromEnv('BENCH_SOAK', 600, 30, 86_400);
/** Decisions per second, steady (open loop). */
const RATE = intFromEnv('BENCH_SOAK_RATE', 200, 1, 5000);
/** Decisions in flight at most (the pool's 16 connections, and a queue of as many again). */
const MAX_IN_FLIGHT = 32;
/** Seconds between samples. */
const SAMPLE_S = intFromEnv('BENCH_SOAK_SAMPLE', 5, 1, 600);
/** Seconds of warm-up whose samples are not compared (default: a fifth of the run, at least 30 s). */
const WARMUP_S = intFromEnv('BENCH_SOAK_WARMUP', Math.max(30, Math.round(DURATION_S / 5)), 0, DURATION_S - 2 * SAMPLE_S);
/** Allowed RSS growth after warm-up. */
const MAX_GROWTH = 0.1;
/** Samples averaged at each end of the compared window. */
const ENDS = 3;

const SIGNING_SECRET = randomBytes(16).toString('hex');
const POLICY = `# Written by bench/soak.ts for one run.
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }] }
  ciso: { members: [{ slack: U0CISO }] }
  risk-owner: { members: [{ slack: U0RISK }] }
permissions:
  contain: [security-oncall, ciso]
  restore: [security-oncall, ciso]
routing:
  - id: large-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [risk-owner, ciso]
    quorum: 2
channels:
  incidents: { slack: C0INCIDENTS }
  approvals: { slack: C0APPROVALS }
`;
const AGENT = {
  name: 'Soak bot',
  owner: 'bench@example.com',
  riskTier: 'medium',
  grants: [{ scope: 'payments:transfer' }, { scope: 'crm:read' }, { scope: 'crm:write' }, { scope: 'mail:send', keepInContainment: true }],
};
const AGENTS = 20;

interface Sample {
  t: number;
  rss: number;
  heap: number;
  loopP50: number;
  loopP99: number;
  loopMax: number;
  decisions: number;
  skipped: number;
  errors: number;
  approvals: number;
  cycles: number;
}

async function main(): Promise<number> {
  const runId = randomBytes(5).toString('hex');
  const dbName = `armalo_bench_soak_${runId}`;
  const prefix = `armalo-bench-soak-${runId}`;
  const databaseUrl = `${PG_BASE}/${dbName}`;
  const token = `bench_${randomBytes(24).toString('hex')}`;
  const tempDir = mkdtempSync(path.join(tmpdir(), 'armalo-bench-soak-'));
  const outDir = path.join(ROOT, 'bench', '.profiles', `soak-${runId}`);
  const children: ServerChild[] = [];
  let dbCreated = false;
  try {
    await ensureDatabaseExists(databaseUrl);
    dbCreated = true;
    const db = createDb(databaseUrl, { max: 1 });
    const { error } = await migrateToLatest(db).finally(() => db.destroy());
    if (error) throw error;

    const fake = await startChild('fake-slack', here('./servers/fake-slack-server.ts'), { HOST }, { startTimeoutMs: 180_000 });
    children.push(fake);
    const policyFile = path.join(tempDir, 'soak-policy.yaml');
    writeFileSync(policyFile, POLICY);
    const env = appEnv({ databaseUrl, redisUrl: REDIS_URL, host: HOST, queuePrefix: prefix, apiToken: token }, 'all', {
      ARMALO_POLICY_FILE: policyFile,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_BOT_TOKEN: `xoxb-bench-${randomBytes(8).toString('hex')}`,
      SLACK_API_URL: `http://${HOST}:${fake.port}/api/`,
    });
    const app = await startChild('app', here('./servers/app-server.ts'), env, { execArgv: INSTANCE_NODE_FLAGS, startTimeoutMs: 180_000 });
    children.push(app);
    const url = `http://${HOST}:${app.port}`;
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    const call = async (method: string, p: string, body?: unknown): Promise<{ id?: string } | undefined> => {
      const res = await fetch(`${url}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      if (res.status >= 300) throw new Error(`${method} ${p}: ${res.status} ${text}`);
      return text ? (JSON.parse(text) as { id?: string }) : undefined;
    };
    for (let i = 0; i < AGENTS; i++) await call('PUT', `/v1/agents/soak-${i}`, AGENT);
    const scrape = () => fetch(`${url}/metrics`, { headers, signal: AbortSignal.timeout(10_000) }).then((r) => r.text());
    await scrape(); // drops the start-up from the event-loop histogram (prom-client resets it per scrape)

    const counts = { decisions: 0, skipped: 0, errors: 0, approvals: 0, cycles: 0 };
    const failures: string[] = [];
    const fail = (what: string) => (err: unknown) => {
      counts.errors++;
      if (failures.length < 10) failures.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    };
    const startedAt = performance.now();
    const endsAt = startedAt + DURATION_S * 1000;
    const running = () => performance.now() < endsAt;

    // Decisions: open loop at RATE/s over a keep-alive pool.
    const pool = new HttpPool(HOST, app.port, 16);
    const decisionBodies = [
      JSON.stringify({ agentId: 'soak-1', action: 'crm:read' }),
      JSON.stringify({ agentId: 'soak-2', action: 'payments:transfer', context: { amount: 500 } }),
      JSON.stringify({ agentId: 'soak-3', action: 'payments:transfer', context: { amount: 50_000 } }),
    ];
    const decisions = (async () => {
      const interval = 1000 / RATE;
      const inflight = new Set<Promise<void>>();
      for (let i = 0; running(); i++) {
        const wait = startedAt + i * interval - performance.now();
        if (wait > 0.5) await new Promise((r) => setTimeout(r, wait));
        // A starved instance must not be buried under an ever longer queue: above the cap, this
        // tick's decision is not sent (counted as skipped; the soak is about memory over time).
        if (inflight.size >= MAX_IN_FLIGHT) {
          counts.skipped++;
          continue;
        }
        const p: Promise<void> = pool
          .post('/v1/decisions', headers, decisionBodies[i % decisionBodies.length]!)
          .then((a) => {
            if (a.status === 200) counts.decisions++;
            else fail('decision')(new Error(`answered ${a.status}`));
          }, fail('decision'))
          .finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await Promise.all(inflight);
    })();
    // Approvals: a request for a large payment, approved by both approvers in Slack, every second.
    const click = (user: string, requestId: string) => {
      const payload = {
        type: 'block_actions',
        user: { id: user, username: user.toLowerCase(), team_id: 'T0TEAM' },
        team: { id: 'T0TEAM', domain: 'example' },
        api_app_id: 'A0APP',
        token: 'x',
        trigger_id: `${Date.now()}.${randomBytes(4).toString('hex')}`,
        response_url: `http://${HOST}:${fake.port}/respond/soak`,
        container: { type: 'message', channel_id: user, message_ts: '1' },
        channel: { id: user },
        actions: [{ type: 'button', action_id: 'armalo_approve', block_id: `approval:${requestId}`, value: requestId, action_ts: '1' }],
      };
      const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
      const ts = Math.floor(Date.now() / 1000);
      const signature = `v0=${createHmac('sha256', SIGNING_SECRET).update(`v0:${ts}:${body}`).digest('hex')}`;
      return fetch(`${url}/slack/events`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': String(ts), 'x-slack-signature': signature }, body, signal: AbortSignal.timeout(10_000) }).then(async (r) => {
        await r.text();
        if (r.status !== 200) throw new Error(`click answered ${r.status}`);
      });
    };
    const approvals = (async () => {
      for (let i = 0; running(); i++) {
        await (async () => {
          const req = await call('POST', '/v1/approval-requests', { agentId: `soak-${10 + (i % 10)}`, action: 'payments:transfer', context: { amount: 20_000 }, justification: `soak ${i}` });
          await click('U0RISK', String(req?.id));
          await click('U0CISO', String(req?.id));
          counts.approvals++;
        })().catch(fail('approval'));
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    // Contain/restore cycles on their own agents, one every 500 ms.
    const cycles = (async () => {
      for (let i = 0; running(); i++) {
        const agent = `soak-${4 + (i % 6)}`;
        await (async () => {
          await call('POST', `/v1/agents/${agent}/actions`, { action: 'contain', reason: 'soak' });
          await call('POST', `/v1/agents/${agent}/actions`, { action: 'restore', reason: 'soak' });
          counts.cycles++;
        })().catch(fail('cycle'));
        await new Promise((r) => setTimeout(r, 500));
      }
    })();

    const samples: Sample[] = [];
    const valueIn = (text: string, name: string) => Number(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN) * 1000;
    while (running()) {
      await new Promise((r) => setTimeout(r, Math.min(SAMPLE_S * 1000, Math.max(0, endsAt - performance.now()))));
      const [usage, metrics] = await Promise.all([app.cpuUsage(), scrape()]);
      const s: Sample = {
        t: (performance.now() - startedAt) / 1000,
        rss: usage.rss,
        heap: usage.heapUsed,
        loopP50: valueIn(metrics, 'armalo_nodejs_eventloop_lag_p50_seconds'),
        loopP99: valueIn(metrics, 'armalo_nodejs_eventloop_lag_p99_seconds'),
        loopMax: valueIn(metrics, 'armalo_nodejs_eventloop_lag_max_seconds'),
        ...counts,
      };
      samples.push(s);
      console.error(`[soak] ${s.t.toFixed(0)} s: RSS ${mb(s.rss)} MB, heap ${mb(s.heap)} MB, loop p99 ${s.loopP99.toFixed(1)} ms, ${s.decisions} decisions, ${s.approvals} approvals, ${s.cycles} cycles, ${s.errors} errors`);
      if (app.exited()) throw new Error('the app exited during the soak');
    }
    await Promise.all([decisions, approvals, cycles]);
    pool.close();

    const after = samples.filter((s) => s.t >= WARMUP_S);
    if (after.length < 2 * ENDS) throw new Error(`too few samples after warm-up (${after.length}); lower BENCH_SOAK_WARMUP or BENCH_SOAK_SAMPLE`);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const baseline = mean(after.slice(0, ENDS).map((s) => s.rss));
    const final = mean(after.slice(-ENDS).map((s) => s.rss));
    const growth = final / baseline - 1;

    // The table: a row every 30 s, plus the last.
    const every = Math.max(1, Math.round(30 / SAMPLE_S));
    const shown = samples.filter((_, i) => i % every === every - 1 || i === samples.length - 1);
    const fmt1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
    console.log(`soak: ${DURATION_S} s, ${RATE} decisions/s, an approval (two Slack clicks) a second, a contain/restore cycle every 0.5 s; one instance (ARMALO_ROLE=all); warm-up ${WARMUP_S} s`);
    console.log(`node ${process.version}, ${cpus().length} CPU(s), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} (a shared machine: compare runs made together)`);
    console.log(
      table(
        [['t s', 'RSS MB', 'heap MB', 'loop p50 ms', 'loop p99 ms', 'loop max ms', 'decisions', 'skipped', 'approvals', 'cycles', 'errors']],
        shown.map((s) => [s.t.toFixed(0), mb(s.rss), mb(s.heap), fmt1(s.loopP50), fmt1(s.loopP99), fmt1(s.loopMax), String(s.decisions), String(s.skipped), String(s.approvals), String(s.cycles), String(s.errors)]),
      ),
    );
    mkdirSync(outDir, { recursive: true });
    const chart = path.join(outDir, 'soak.png');
    writeFileSync(chart, soakChart(samples, WARMUP_S));
    writeFileSync(path.join(outDir, 'soak.json'), JSON.stringify({ durationS: DURATION_S, rate: RATE, warmupS: WARMUP_S, samples }, null, 1));
    console.log(`chart: ${path.relative(ROOT, chart)} (samples in soak.json beside it)`);
    if (failures.length) console.log(`errors (first ${failures.length} of ${counts.errors}):\n  ${failures.join('\n  ')}`);
    const ok = growth <= MAX_GROWTH;
    console.log(`goal "RSS grows at most ${MAX_GROWTH * 100}% after warm-up": ${ok ? 'PASS' : 'FAIL'} (${mb(baseline)} MB at ${after[0]!.t.toFixed(0)} s → ${mb(final)} MB at the end: ${(growth * 100).toFixed(1)}%)`);
    return ok && counts.errors === 0 ? 0 : 1;
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    if (dbCreated) {
      const admin = new pg.Client({ connectionString: `${PG_BASE}/postgres` });
      await admin.connect();
      await admin.query(`drop database if exists "${dbName}" with (force)`).finally(() => admin.end());
    }
    await deleteRedisPrefix(REDIS_URL, prefix).catch((err: unknown) => console.error(`Redis keys under ${prefix} not deleted: ${String(err)}`));
    rmSync(tempDir, { recursive: true, force: true });
  }
}

/** RSS (top) and event-loop delay p99 (bottom) over time, the warm-up shaded: an SVG rendered to PNG. */
function soakChart(samples: Sample[], warmupS: number): Buffer {
  const W = 800;
  const H = 420;
  const left = 64;
  const right = 16;
  const plotW = W - left - right;
  const tMax = Math.max(1, ...samples.map((s) => s.t));
  const x = (t: number) => left + (t / tMax) * plotW;
  const panel = (top: number, height: number, label: string, values: number[], colour: string) => {
    const vMax = Math.max(1, ...values.filter(Number.isFinite)) * 1.1;
    const y = (v: number) => top + height - (v / vMax) * height;
    const points = samples.map((s, i) => `${x(s.t).toFixed(1)},${y(values[i]!).toFixed(1)}`).join(' ');
    const ticks = [0, 0.5, 1].map((f) => {
      const v = vMax * f;
      return `<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="11">${v.toFixed(0)}</text><line x1="${left}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`;
    });
    return [
      `<rect x="${left}" y="${top}" width="${(x(Math.min(warmupS, tMax)) - left).toFixed(1)}" height="${height}" fill="#f1f1f1"/>`,
      ...ticks,
      `<polyline points="${points}" fill="none" stroke="${colour}" stroke-width="2"/>`,
      `<text x="${left}" y="${top - 6}" font-size="12" font-weight="bold">${escapeXml(label)}</text>`,
    ].join('');
  };
  const xTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<text x="${x(tMax * f).toFixed(1)}" y="${H - 8}" text-anchor="middle" font-size="11">${(tMax * f).toFixed(0)} s</text>`).join('');
  const title = `Soak: RSS and event-loop delay (warm-up ${warmupS} s shaded)`;
  const fonts = chartFonts(title);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="${escapeXml(fonts.families)}">
<rect width="${W}" height="${H}" fill="#ffffff"/>
<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>
${panel(50, 150, 'RSS, MB', samples.map((s) => s.rss / 1024 / 1024), '#1f6feb')}
${panel(240, 140, 'event-loop delay p99, ms', samples.map((s) => s.loopP99), '#d1242f')}
${xTicks}
</svg>`;
  return new Resvg(svg, { fitTo: { mode: 'original' }, font: { loadSystemFonts: false, fontFiles: fonts.files, defaultFontFamily: 'Noto Sans' }, background: '#ffffff' }).render().asPng();
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
