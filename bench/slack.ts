/**
 * The Slack part of the benchmark (see bench/README.md, "Slack acknowledgements and containment
 * time-to-effect"): how fast our app acknowledges signed `/armalo` slash commands, and how long a
 * contain sent through Slack to one instance takes to turn another instance's decisions to deny.
 * Run from decision.bench.ts, which owns the database, the Redis prefix, the temp directory and
 * the cleanup; every child started here is handed to it through `track`.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { appEnv, childGroup, type ServerChild } from './lib/children.js';
import { FAKE_SLACK_COUNTS_PATH } from './lib/fake-slack.js';
import { HttpPool, type Answer } from './lib/http.js';
import { SLACK_EVENTS_PATH, checkAck, slackHeaders, slashCommandBody } from './lib/slack.js';
import { steady } from './lib/steady.js';
import { Samples, fmtInt, fmtMs, median, table } from './lib/stats.js';

export const GOAL_ACK_P99_MS = 100;
export const GOAL_TTE_P99_MS = 250;

/** Contain + restore pairs per second of the steady run, beside the status commands. */
const PAIRS_PER_SECOND = 4;
/** Status commands go round-robin to this many agents (never contained). */
const STATUS_AGENTS = 10;
/** Allow answers B must give for an agent before the contain is sent. */
const ALLOWS_BEFORE = 5;
/** Give up on one agent's time-to-effect after this long without a deny. */
const TTE_TIMEOUT_MS = 5000;
/** Quiet time between two time-to-effect measurements, so one contain's notices do not overlap the next. */
const TTE_GAP_MS = 200;
/** Stop the time-to-effect series after this many failures in a row (a broken server fails fast). */
const TTE_MAX_FAILURES_IN_A_ROW = 3;
const ACK_TIMEOUT_MS = 10_000;

const ONCALL = 'U0ONCALL1';
const INCIDENTS_CHANNEL = 'C0INCIDENTS';
/** U0ONCALL1 may contain and restore alone (no secondPerson), so each restore applies at once. */
const POLICY = `# Written by bench/slack.ts for one benchmark run.
roles:
  security-oncall: { members: [{ slack: ${ONCALL} }] }
permissions:
  contain: [security-oncall]
  restore: [security-oncall]
channels:
  incidents: { slack: ${INCIDENTS_CHANNEL} }
`;

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const APP_SCRIPT = here('./servers/app-server.ts');
const FAKE_SLACK_SCRIPT = here('./servers/fake-slack-server.ts');

export interface SlackBenchOptions {
  host: string;
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
  apiToken: string;
  /** Seconds of the steady run. */
  duration: number;
  /** Seconds of unrecorded commands before it (0: none). */
  warmup: number;
  /** Status commands per second. */
  rate: number;
  /** Agents in the time-to-effect series. */
  tteAgents: number;
  /** A directory the caller removes at cleanup; the policy file goes there. */
  tempDir: string;
  /** The registration body (PUT /v1/agents/{id}) of every agent; `payments:transfer` must be allowed. */
  agent: unknown;
  /** Receives every child this part starts, so the caller's cleanup stops it. */
  track(child: ServerChild): void;
}

/** How long the Slack part may take, at most, before the caller's watchdog should fire. */
export function slackBudgetSeconds(o: Pick<SlackBenchOptions, 'duration' | 'warmup' | 'tteAgents'>): number {
  return 120 + o.warmup + o.duration + ACK_TIMEOUT_MS / 1000 + o.tteAgents * ((TTE_TIMEOUT_MS + ACK_TIMEOUT_MS + TTE_GAP_MS) / 1000);
}

/** One kind of command: latencies of its correct answers, and everything that was not one. */
class Series {
  readonly samples = new Samples();
  sent = 0;
  ok = 0;
  non200 = 0;
  /** Connection errors, timeouts and 200s that were not the expected answer. */
  errors = 0;
  readonly problems: string[] = [];

  constructor(readonly name: string) {}

  /** Records one exchange; returns true when it was the expected answer. */
  record(result: Answer | Error, check: (a: Answer) => string | undefined): boolean {
    this.sent++;
    let problem: string | undefined;
    if (result instanceof Error) {
      this.errors++;
      problem = result.message;
    } else {
      problem = check(result);
      if (problem === undefined) {
        this.ok++;
        this.samples.add(result.ms);
        return true;
      }
      if (result.status !== 200) this.non200++;
      else this.errors++;
    }
    this.fail(problem);
    return false;
  }

  /** A failure that is not an answer of its own (no deny in time, a wrong decision). */
  fail(problem: string): void {
    if (this.problems.length < 5) this.problems.push(problem);
  }

  stats(): { p50: number; p99: number; max: number } {
    const [p50, p99, max] = this.samples.percentiles([0.5, 0.99, 1]);
    return { p50: p50!, p99: p99!, max: max! };
  }
}

const settle = (p: Promise<Answer>): Promise<Answer | Error> => p.catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));

export async function runSlackBench(o: SlackBenchOptions): Promise<void> {
  const secret = randomBytes(24).toString('hex');
  const policyFile = path.join(o.tempDir, 'policy.yaml');
  writeFileSync(policyFile, POLICY);
  const pools: HttpPool[] = [];
  const pool = (port: number, maxSockets: number) => {
    const p = new HttpPool(o.host, port, maxSockets);
    pools.push(p);
    return p;
  };
  const { children, start, ensureAlive } = childGroup(o.track, 'Slack');

  try {
    const fake = await start('fake-slack', FAKE_SLACK_SCRIPT, { HOST: o.host });
    const fakeUrl = `http://${o.host}:${fake.port}`;
    const slackAppEnv = (role: 'all' | 'web') =>
      appEnv({ ...o, queuePrefix: o.prefix }, role, {
        ARMALO_POLICY_FILE: policyFile,
        SLACK_SIGNING_SECRET: secret,
        SLACK_BOT_TOKEN: `xoxb-bench-${randomBytes(8).toString('hex')}`,
        SLACK_API_URL: `${fakeUrl}/api/`,
      });
    const a = await start('app A (all)', APP_SCRIPT, slackAppEnv('all'));
    const aUrl = `http://${o.host}:${a.port}`;

    // Agents: a few for status (never contained), one per contain/restore pair, warm-up ones and
    // one per time-to-effect measurement. Each is contained at most once.
    const pairs = PAIRS_PER_SECOND * o.duration;
    const warmPairs = 1 + Math.ceil(o.warmup * PAIRS_PER_SECOND);
    const ids = {
      status: Array.from({ length: STATUS_AGENTS }, (_, i) => `bench-status-${i}`),
      contain: Array.from({ length: pairs }, (_, i) => `bench-contain-${i}`),
      warm: Array.from({ length: warmPairs }, (_, i) => `bench-warm-${i}`),
      tte: Array.from({ length: o.tteAgents }, (_, i) => `bench-tte-${i}`),
    };
    for (const id of [...ids.status, ...ids.contain, ...ids.warm, ...ids.tte]) {
      const put = await fetch(`${aUrl}/v1/agents/${id}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${o.apiToken}` },
        body: JSON.stringify(o.agent),
        signal: AbortSignal.timeout(5000),
      });
      if (put.status !== 201 && put.status !== 200) throw new Error(`registering agent ${id} on A failed: ${put.status} ${await put.text()}`);
    }

    let responses = 0;
    const slashTo = (target: HttpPool, text: string) => {
      const body = slashCommandBody({ userId: ONCALL, text, responseUrl: `${fakeUrl}/respond/${++responses}` });
      return target.post(SLACK_EVENTS_PATH, slackHeaders(secret, body), body, ACK_TIMEOUT_MS);
    };
    const statusCheck = (id: string) => (ans: Answer) => checkAck(ans.status, ans.body, `(${id}) is active`);
    const containCheck = (id: string) => (ans: Answer) => checkAck(ans.status, ans.body, `Contained ${id}`, 'already applied');
    const restoreCheck = (id: string) => (ans: Answer) => checkAck(ans.status, ans.body, `Restored ${id}`, 'already applied');

    const statusPool = pool(a.port, 16);
    const pairPool = pool(a.port, 8);
    const pair = async (id: string, contain: Series, restore: Series) => {
      if (!contain.record(await settle(slashTo(pairPool, `contain ${id} bench`)), containCheck(id))) return;
      restore.record(await settle(slashTo(pairPool, `restore ${id} bench`)), restoreCheck(id));
    };
    const status = async (id: string, series: Series) => {
      series.record(await settle(slashTo(statusPool, `status ${id}`)), statusCheck(id));
    };

    // Stop at once unless one of each command is answered as expected.
    const sample = { status: new Series('status'), contain: new Series('contain'), restore: new Series('restore') };
    await status(ids.status[0]!, sample.status);
    await pair(ids.warm[0]!, sample.contain, sample.restore);
    for (const s of Object.values(sample)) {
      if (s.ok !== 1) throw new Error(`Slack: the sample /armalo ${s.name} was not acknowledged as expected: ${s.problems.join('; ') || 'not sent'}`);
    }

    const intervalMs = 1000 / o.rate;
    const run = async (seconds: number, pairIds: string[]) => {
      const series = { status: new Series('status'), contain: new Series('contain'), restore: new Series('restore') };
      const loopDelay = monitorEventLoopDelay({ resolution: 5 });
      loopDelay.enable();
      const t0 = performance.now() + 20;
      await Promise.all([
        steady(o.rate * seconds, intervalMs, t0, (i) => status(ids.status[i % ids.status.length]!, series.status)),
        // Pairs start half a slot in, between status commands.
        steady(pairIds.length, (seconds * 1000) / Math.max(1, pairIds.length), t0 + intervalMs / 2, (i) => pair(pairIds[i]!, series.contain, series.restore)),
      ]);
      loopDelay.disable();
      ensureAlive();
      return { series, wallSeconds: (performance.now() - t0) / 1000, stallP99: Math.max(0, loopDelay.percentile(99) / 1e6 - 5) };
    };

    if (o.warmup > 0) {
      const w = await run(o.warmup, ids.warm.slice(1));
      const bad = Object.values(w.series).find((s) => s.ok !== s.sent);
      if (bad) throw new Error(`Slack warm-up: /armalo ${bad.name} answered wrongly: ${bad.problems.join('; ')}`);
    }
    const steadyRun = await run(o.duration, ids.contain);
    const { series } = steadyRun;
    const line = (s: Series, label: string) => {
      const st = s.stats();
      return `slack ${label.padEnd(36)} ${String(s.sent).padStart(5)} sent  p50 ${fmtMs(st.p50)} ms  p99 ${fmtMs(st.p99)} ms  max ${fmtMs(st.max)} ms  non-200 ${s.non200}  errors ${s.errors}`;
    };
    console.log(line(series.status, `ack /armalo status @${fmtInt(o.rate)}/s, ${o.duration} s`));
    console.log(line(series.contain, `ack /armalo contain, ${fmtInt(PAIRS_PER_SECOND)}/s`));
    console.log(line(series.restore, 'ack /armalo restore, after contain'));

    // Time-to-effect: B answers decisions from its own view; the contain goes to A.
    const b = await start('app B (web)', APP_SCRIPT, slackAppEnv('web'));
    const poller = pool(b.port, 1);
    const commander = pool(a.port, 1);
    const tte = new Series('time-to-effect');
    const tteAck = new Series('contain ack');
    const pollMs: number[] = [];
    let denyBeforeAck = 0;
    let failuresInARow = 0;
    const decisionHeaders = { 'content-type': 'application/json', authorization: `Bearer ${o.apiToken}` };
    /** One agent: poll B until it allows, send the contain to A, poll on until B denies. True when all went as expected. */
    const timeToEffect = async (id: string): Promise<boolean> => {
      const pollBody = JSON.stringify({ agentId: id, action: 'payments:transfer', context: { amount: 500 } });
      let allows = 0;
      let command: Promise<Answer | Error> | undefined;
      let sentAt = 0;
      let deniedAt: number | undefined;
      let problem: string | undefined;
      for (;;) {
        let ans: Answer;
        try {
          ans = await poller.post('/v1/decisions', decisionHeaders, pollBody, 5000);
        } catch (err) {
          problem = `decision on B: ${(err as Error).message}`;
          break;
        }
        pollMs.push(ans.ms);
        const allow = ans.body.includes('"decision":"allow"');
        if (ans.status !== 200 || (!allow && !ans.body.includes('"decision":"deny"'))) {
          problem = `decision on B for ${id}: HTTP ${ans.status} ${ans.body.slice(0, 300)}`;
          break;
        }
        if (!command) {
          if (!allow) {
            problem = `B denied ${id} before the contain was sent: ${ans.body.slice(0, 300)}`;
            break;
          }
          if (++allows === ALLOWS_BEFORE) {
            // Signed before the clock starts; the poller's next request goes out right after.
            const body = slashCommandBody({ userId: ONCALL, text: `contain ${id} bench`, responseUrl: `${fakeUrl}/respond/${++responses}` });
            const headers = slackHeaders(secret, body);
            sentAt = performance.now();
            command = settle(commander.post(SLACK_EVENTS_PATH, headers, body, ACK_TIMEOUT_MS));
          }
          continue;
        }
        if (!allow) {
          deniedAt = ans.doneAt;
          break;
        }
        if (ans.doneAt - sentAt > TTE_TIMEOUT_MS) {
          problem = `B still allowed ${id} ${TTE_TIMEOUT_MS} ms after the contain was sent`;
          break;
        }
      }
      const ack = command ? await command : undefined;
      const ackOk = ack ? tteAck.record(ack, containCheck(id)) : false;
      if (ack && !(ack instanceof Error) && deniedAt !== undefined && deniedAt < ack.doneAt) denyBeforeAck++;
      if (deniedAt !== undefined && problem === undefined) {
        tte.sent++;
        tte.ok++;
        tte.samples.add(deniedAt - sentAt);
        return ackOk;
      }
      tte.sent++;
      tte.errors++;
      tte.fail(problem ?? 'no deny');
      return false;
    };
    for (const id of ids.tte) {
      if (failuresInARow >= TTE_MAX_FAILURES_IN_A_ROW) {
        tte.fail(`stopped after ${tte.sent} of ${ids.tte.length} agents: ${TTE_MAX_FAILURES_IN_A_ROW} failures in a row`);
        break;
      }
      await sleep(TTE_GAP_MS);
      failuresInARow = (await timeToEffect(id)) ? 0 : failuresInARow + 1;
      ensureAlive();
    }
    const tteStats = tte.stats();
    console.log(
      `slack ${'time-to-effect, contain → deny on B'.padEnd(36)} ${String(tte.sent).padStart(5)} sent  p50 ${fmtMs(tteStats.p50)} ms  p99 ${fmtMs(tteStats.p99)} ms  max ${fmtMs(tteStats.max)} ms  errors ${tte.errors}` +
        `  (B's decision round trip: median ${fmtMs(median(pollMs))} ms over ${fmtInt(pollMs.length)} polls; deny seen before A's ack in ${denyBeforeAck}/${tte.ok})`,
    );

    const counts = await fetch(`${fakeUrl}${FAKE_SLACK_COUNTS_PATH}`, { signal: AbortSignal.timeout(5000) })
      .then((r) => r.json() as Promise<Record<string, number>>)
      .catch(() => ({}) as Record<string, number>);

    const row = (label: string, s: Series) => {
      const st = s.stats();
      return [label, fmtInt(s.sent), fmtMs(st.p50), fmtMs(st.p99), fmtMs(st.max), String(s.non200), String(s.errors)];
    };
    console.log('');
    console.log(
      table(
        [['slack (A: ARMALO_ROLE=all, B: ARMALO_ROLE=web)', 'count', 'p50 ms', 'p99 ms', 'max ms', 'non-200', 'errors']],
        [
          row(`ack /armalo status @${fmtInt(o.rate)}/s`, series.status),
          row('ack /armalo contain', series.contain),
          row('ack /armalo restore', series.restore),
          row('ack /armalo contain (t-t-e runs)', tteAck),
          row('time-to-effect contain → deny on B', tte),
        ],
      ),
    );
    console.log(
      `(ack = signed command sent to A → its whole HTTP answer received; time-to-effect = contain sent to A → first deny answered by B; ` +
        `one ${o.duration} s run, ${fmtInt(PAIRS_PER_SECOND)} contain+restore pairs/s beside the status commands; a p99 of fewer than 100 samples is the maximum)`,
    );
    console.log(
      `fake Slack Web API calls from A's worker: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}; ` +
        `benchmark process event-loop stall p99 during the ack run ${fmtMs(steadyRun.stallP99)} ms`,
    );
    if (steadyRun.wallSeconds > o.duration * 1.5 + 2) console.log(`slack: the ack run took ${steadyRun.wallSeconds.toFixed(1)} s instead of about ${o.duration} s (answers were slow)`);

    // A wrong or missing answer is a miss whatever the latencies of the right ones.
    const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
    const wrong = (ss: Series[]) => {
      const n = ss.reduce((sum, s) => sum + s.sent - s.ok, 0);
      return n ? `; ${n} wrong or missing answer(s), see below` : '';
    };
    const acks = [series.status, series.contain, series.restore];
    const ackOk = acks.every((s) => s.stats().p99 < GOAL_ACK_P99_MS) && !wrong(acks);
    console.log(
      `goal "ack p99 under ${GOAL_ACK_P99_MS} ms":             ${verdict(ackOk)} (${acks.map((s) => `${s.name} ${fmtMs(s.stats().p99)} ms`).join(', ')}${wrong(acks)})`,
    );
    const tteMissing = ids.tte.length - tte.ok;
    const tteOk = tteStats.p99 < GOAL_TTE_P99_MS && tteMissing === 0;
    console.log(
      `goal "time-to-effect p99 under ${GOAL_TTE_P99_MS} ms":  ${verdict(tteOk)} (${fmtMs(tteStats.p99)} ms; max ${fmtMs(tteStats.max)} ms${tteMissing ? `; ${tteMissing} of ${ids.tte.length} agent(s) without a measurement, see below` : ''})`,
    );

    const all = [...acks, tteAck, tte];
    if (all.some((s) => s.ok !== s.sent || s.problems.length > 0) || tte.ok !== ids.tte.length) {
      const detail = all
        .filter((s) => s.problems.length)
        .map((s) => `${s.name}: ${s.problems.join(' | ')}`)
        .join('\n  ');
      throw new Error(`Slack: wrong or missing answers, so the numbers above describe a broken server:\n  ${detail}`);
    }
  } finally {
    for (const p of pools) p.close();
    // B and A before the fake Slack, so A's worker does not lose its Slack API mid-job.
    for (const child of [...children].reverse()) await child.stop();
  }
}
