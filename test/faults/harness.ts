import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createDb, type Db } from '../../src/db/database.js';
import { TOKEN, waitFor } from '../support/app.js';
import { createTestDatabase, testPrefix, type TestDatabase } from '../support/database.js';
import { FakeSlack, type SlackCall } from '../support/fake-slack.js';
import { SIGNING_SECRET } from '../support/slack-requests.js';
import { writePolicy } from '../support/slack-policy.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/**
 * The fault suite's one harness: the real app as child processes (a web role from `src/main.ts`,
 * what `npm start` runs, and worker roles from `test/support/worker-child.ts`, the same startApp
 * with short job locks so a killed worker's job is taken over in seconds), configured through the
 * environment as in production; a database and queue prefix of their own; the fake Slack and a
 * webhook receiver (events and approval callbacks); and, when a scenario asks, a Redis server of
 * its own (`RedisServer`) that it may stop and start. The shared Redis on 6379 is never touched
 * beyond the scenario's own prefix.
 *
 * Children run a bundle built once per file with esbuild (node_modules stay external): loading the
 * TypeScript through tsx in every one of fifty restarted workers costs more than the faults.
 */

export const repoRoot = new URL('../..', import.meta.url).pathname;
export const EVENTS_SECRET = 'whsec_faults_0123456789abcdef';
export const PLATFORM_TOKEN = TOKEN;

/** The policy every scenario runs: on-call responders, a two-person payments route, incident and approval channels. */
export const FAULTS_POLICY = `
roles:
  security-oncall: { members: [{ slack: U0ONCALL1 }, { slack: U0ONCALL2 }] }
  ciso: { members: [{ slack: U0CISO }] }
  risk-owner: { members: [{ slack: U0RISK }] }
permissions:
  contain: [security-oncall, ciso]
  narrow: [security-oncall, ciso]
  revoke: [ciso]
  restore: [security-oncall, ciso]
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [risk-owner, ciso]
    quorum: 2
channels:
  incidents: { slack: C0INCIDENTS }
  approvals: { slack: C0APPROVALS }
`;

export const faultAgent = (name: string) => ({
  name,
  owner: 'owner@example.com',
  riskTier: 'high',
  grants: [{ scope: 'payments:transfer' }, { scope: 'mail:send', keepInContainment: true }, { scope: 'crm:write' }],
});

/** A small seeded PRNG (mulberry32): the same seed gives the same fault points. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Reads a number from the environment (a knob of the suite), or the default. */
export function knob(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${raw}`);
  return n;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

// ---------------------------------------------------------------------------------------------
// The app bundle

export interface AppBundle {
  main: string;
  worker: string;
  remove(): void;
}

/**
 * Bundles `src/main.ts` and the worker child into `build/faults/<id>/app/bin/`, and the migrations
 * beside them (`build/faults/<id>/migrations/`, where the migrator looks: two folders up from the
 * code). Packages stay in node_modules; `build/` is git-ignored.
 */
export async function buildAppBundle(): Promise<AppBundle> {
  const { build } = await import('esbuild');
  const dir = join(repoRoot, 'build', 'faults', randomBytes(4).toString('hex'));
  const common = { bundle: true, platform: 'node' as const, format: 'esm' as const, packages: 'external' as const, sourcemap: true, logLevel: 'warning' as const, target: 'node20' };
  await build({ ...common, entryPoints: { main: join(repoRoot, 'src/main.ts'), 'worker-child': join(repoRoot, 'test/support/worker-child.ts') }, outdir: join(dir, 'app', 'bin') });
  const migrations = readdirSync(join(repoRoot, 'migrations')).filter((f) => /^\d{4}_.*\.ts$/.test(f));
  mkdirSync(join(dir, 'migrations'), { recursive: true });
  await build({ ...common, bundle: false, packages: undefined, entryPoints: migrations.map((f) => join(repoRoot, 'migrations', f)), outdir: join(dir, 'migrations') });
  return { main: join(dir, 'app', 'bin', 'main.js'), worker: join(dir, 'app', 'bin', 'worker-child.js'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

// ---------------------------------------------------------------------------------------------
// App processes

export type Role = 'web' | 'worker';

/** One app process: the web role (src/main.ts) or a worker role (worker-child). */
export class AppProcess {
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  url = '';
  readyAt = 0;
  private exitCode: number | null | undefined;

  private constructor(
    readonly role: Role,
    readonly child: ChildProcess,
    readonly startedAt: number,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve((this.exitCode = code))));
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) this.lines.push(line);
      if (this.lines.length > 400) this.lines.splice(0, this.lines.length - 400);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  /** Starts a process and resolves once it serves (its HTTP port bound, its workers ready). */
  static async start(bundle: AppBundle, role: Role, env: Record<string, string>, timeoutMs = 300_000): Promise<AppProcess> {
    const entry = role === 'web' ? bundle.main : bundle.worker;
    const child = spawn(process.execPath, ['--enable-source-maps', entry], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', ...env, ARMALO_ROLE: role, PORT: '0', HOST: '127.0.0.1' },
      stdio: role === 'worker' ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    });
    const proc = new AppProcess(role, child, Date.now());
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${role} process did not start in ${timeoutMs} ms:\n${proc.lines.slice(-20).join('\n')}`)), timeoutMs);
      const done = (p: number) => {
        clearTimeout(timer);
        resolve(p);
      };
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${role} process exited with ${code} before it was ready:\n${proc.lines.slice(-20).join('\n')}`));
      });
      if (role === 'worker') child.once('message', (m: { port?: number }) => done(Number(m.port)));
      else {
        let buffered = '';
        const watch = (chunk: Buffer) => {
          buffered = (buffered + chunk.toString('utf8')).slice(-8192);
          const m = /"port":(\d+)[^\n]*armalo chat-ops started|armalo chat-ops started[^\n]*"port":(\d+)/.exec(buffered);
          if (m) {
            child.stdout!.off('data', watch);
            done(Number(m[1] ?? m[2]));
          }
        };
        child.stdout!.on('data', watch);
      }
    });
    proc.url = `http://127.0.0.1:${port}`;
    proc.readyAt = Date.now();
    return proc;
  }

  /** Sends a signal; with SIGKILL, resolves once the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.alive) return;
    this.child.kill(signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM') await this.exited;
  }

  /** Calls the REST API with the platform token. */
  async call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const res = await fetch(this.url + path, {
      method,
      headers: { authorization: `Bearer ${PLATFORM_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON: keep the text.
    }
    return { status: res.status, body: parsed };
  }
}

// ---------------------------------------------------------------------------------------------
// A Redis server of the scenario's own

/**
 * `redis-server` on a free port, without persistence, that a scenario stops and starts. `stop('save')`
 * is an operator's restart (SHUTDOWN SAVE into the server's own folder, read back on start: the
 * queues survive); `stop('kill')` is a crash (SIGKILL: whatever Redis held is gone).
 */
export class RedisServer {
  port = 0;
  private process: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'armalo-faults-redis-'));

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--dbfilename', 'dump.rdb'], { stdio: 'ignore' });
    this.process = child;
    await waitFor(async () => this.ping(), 10_000, `redis-server on ${this.port}`);
  }

  async ping(): Promise<boolean> {
    const redis = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
    redis.on('error', () => undefined);
    try {
      await redis.connect();
      return (await redis.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      redis.disconnect();
    }
  }

  async stop(mode: 'save' | 'kill' = 'save'): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    if (mode === 'save') {
      const redis = new Redis(this.url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
      redis.on('error', () => undefined);
      await redis.call('shutdown', 'save').catch(() => undefined);
      redis.disconnect();
    } else child.kill('SIGKILL');
    await gone;
    this.process = undefined;
  }

  async remove(): Promise<void> {
    await this.stop('kill');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The world of one scenario

export interface WorldOptions {
  /** Redis: the shared server (default) or one of the scenario's own. */
  ownRedis?: boolean;
  /** Database URL for the app (e.g. through a proxy); the test's own connections go direct. */
  appDatabaseUrl?: (direct: string) => Promise<string> | string;
  env?: Record<string, string>;
}

/** Everything one scenario runs on; `stop()` takes it all down (children by pid, then fakes, then stores). */
export class FaultWorld {
  readonly processes: AppProcess[] = [];
  database!: TestDatabase;
  db!: Db;
  prefix = testPrefix();
  slack = new FakeSlack();
  receiver = new WebhookReceiver();
  redis: RedisServer | undefined;
  bundle!: AppBundle;
  env: Record<string, string> = {};
  private policyDir = '';

  static async create(options: WorldOptions = {}): Promise<FaultWorld> {
    const world = new FaultWorld();
    const [bundle, database] = await Promise.all([buildAppBundle(), createTestDatabase()]);
    world.bundle = bundle;
    world.database = database;
    world.db = createDb(database.url, { max: 4 });
    await world.slack.start();
    const events = await world.receiver.start();
    if (options.ownRedis) {
      world.redis = new RedisServer();
      await world.redis.start();
    }
    const policyFile = writePolicy(FAULTS_POLICY);
    world.policyDir = policyFile.replace(/\/policy\.yaml$/, '');
    const receiverHost = new URL(events).host;
    world.env = {
      DATABASE_URL: options.appDatabaseUrl ? await options.appDatabaseUrl(database.url) : database.url,
      REDIS_URL: world.redis?.url ?? (process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'),
      ARMALO_API_TOKENS: `platform:${PLATFORM_TOKEN}`,
      ARMALO_QUEUE_PREFIX: world.prefix,
      ARMALO_POLICY_FILE: policyFile,
      LOG_LEVEL: 'info',
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_BOT_TOKEN: 'xoxb-faults-0123456789',
      SLACK_API_URL: `${world.slack.url}/api/`,
      ARMALO_EVENTS_WEBHOOK_URL: events,
      ARMALO_EVENTS_WEBHOOK_SECRET: EVENTS_SECRET,
      ARMALO_CALLBACK_HOSTS: receiverHost,
      TEST_LOCK_MS: '2000',
      ...options.env,
    };
    return world;
  }

  /** The receiver's base URL: approval callbacks go to `<base>/callback/<key>`. */
  callbackUrl(key: string): string {
    return this.receiver.url().replace(/\/events$/, `/callback/${key}`);
  }

  async start(role: Role, env: Record<string, string> = {}): Promise<AppProcess> {
    const proc = await AppProcess.start(this.bundle, role, { ...this.env, ...env });
    this.processes.push(proc);
    return proc;
  }

  async stop(): Promise<void> {
    // Children first (by pid: only the processes this world started), then the fakes and stores.
    await Promise.all(this.processes.map((p) => p.kill('SIGKILL')));
    await Promise.all([this.slack.stop(), this.receiver.stop()]);
    await this.db?.destroy();
    await this.redis?.remove();
    if (!this.redis) await cleanPrefix(this.env.REDIS_URL!, this.prefix);
    await this.database?.drop();
    if (this.policyDir) rmSync(this.policyDir, { recursive: true, force: true });
    this.bundle?.remove();
  }
}

async function cleanPrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// Figures

export interface Figures {
  scenario: string;
  faults: number;
  noticesExpected: number;
  noticesDelivered: number;
  noticesDuplicated: number;
  actionsAcknowledged: number;
  actionsLost: number;
  /** Anything else the scenario measured (callbacks, events, seconds to recover…). */
  extra?: Record<string, string | number>;
}

const all: Figures[] = [];

/** Prints one scenario's figures as a table row (and keeps them for the file's summary). */
export function report(f: Figures): void {
  all.push(f);
  const extra = f.extra ? Object.entries(f.extra).map(([k, v]) => `${k}=${v}`).join(' ') : '';
  console.log(
    [
      `fault scenario: ${f.scenario}`,
      `  faults injected: ${f.faults}`,
      `  notices expected/delivered/duplicated: ${f.noticesExpected}/${f.noticesDelivered}/${f.noticesDuplicated}`,
      `  actions acknowledged/lost: ${f.actionsAcknowledged}/${f.actionsLost}`,
      ...(extra ? [`  ${extra}`] : []),
    ].join('\n'),
  );
}

// ---------------------------------------------------------------------------------------------
// What was delivered: the ledger against the fake Slack

export interface SlackTally {
  /** Ledger keys the scenario expected (every one must be recorded). */
  expected: number;
  /** Expected keys recorded in the ledger whose message the fake Slack holds. */
  delivered: number;
  /** Expected keys missing from the ledger, or recorded with a message Slack never got. */
  lost: string[];
  /** Messages Slack posted that no ledger row refers to: a second post of a notice. */
  duplicates: { channel: string; ts: string; at: number; text: string }[];
}

/**
 * Every chat.postMessage the fake Slack answered `ok` has a `ts`; every notice recorded in the
 * ledger names the `ts` it got. A posted message no ledger row names is a duplicate (its notice was
 * posted again after the first post's record was lost); an expected key with no row is a lost notice.
 */
export async function slackTally(world: FaultWorld, expectedKeys: string[]): Promise<SlackTally> {
  const rows = await world.db.selectFrom('chat_messages').select(['key', 'channel', 'ts']).where('platform', '=', 'slack').execute();
  const byKey = new Map(rows.map((r) => [r.key, r]));
  const recordedTs = new Set(rows.map((r) => `${r.channel}/${r.ts}`));
  const posted = new Map<string, SlackCall>();
  for (const p of world.slack.posts()) if (p.answer?.ts) posted.set(`${String(p.answer.channel)}/${String(p.answer.ts)}`, p);
  const lost = expectedKeys.filter((k) => {
    const row = byKey.get(k);
    return !row || !posted.has(`${row.channel}/${row.ts}`);
  });
  const duplicates = [...posted.entries()]
    .filter(([key]) => !recordedTs.has(key))
    .map(([key, p]) => ({ channel: String(p.args.channel), ts: key.split('/')[1]!, at: p.answeredAt ?? p.at, text: String(p.args.text ?? '').slice(0, 80) }));
  return { expected: expectedKeys.length, delivered: expectedKeys.length - lost.length, lost, duplicates };
}

/** Jobs that failed for good in the world's queues (their name, id and reason): each one is a lost delivery. */
export async function failedJobs(world: FaultWorld): Promise<string[]> {
  const connection = new Redis(world.env.REDIS_URL!, { maxRetriesPerRequest: null });
  const out: string[] = [];
  try {
    for (const name of ['events', 'notify', 'timers']) {
      const queue = new Queue(name, { connection, prefix: world.prefix });
      for (const job of await queue.getFailed(0, 200)) out.push(`${name}/${job.name}/${job.id}: ${job.failedReason}`);
      await queue.close();
    }
  } finally {
    connection.disconnect();
  }
  return out;
}

/** Where the notify jobs of one approval request are (state, attempts, stalls, last error): what a stuck round waited on. */
export async function approvalJobs(world: FaultWorld, requestId: string): Promise<string[]> {
  const connection = new Redis(world.env.REDIS_URL!, { maxRetriesPerRequest: null });
  const queue = new Queue('notify', { connection, prefix: world.prefix });
  try {
    const jobs = await queue.getJobs(['active', 'waiting', 'delayed', 'failed', 'completed', 'prioritized'], 0, 2000);
    const mine = jobs.filter((j) => j.name === 'approval-cards' && (j.data as { requestId?: string }).requestId === requestId);
    return Promise.all(
      mine.map(async (j) => {
        const age = (t: number | undefined) => (t ? `${((Date.now() - t) / 1000).toFixed(0)} s ago` : '-');
        return `${j.id} ${await j.getState()} added ${age(j.timestamp)} processed ${age(j.processedOn)} attempts ${j.attemptsMade}/${j.attemptsStarted} stalls ${j.stalledCounter} delay ${j.delay} error ${j.failedReason ?? '-'} ${(j.stacktrace ?? []).slice(-2).map((s) => s.split('\n')[0]).join(' | ')}`;
      }),
    );
  } finally {
    await queue.close();
    connection.disconnect();
  }
}
