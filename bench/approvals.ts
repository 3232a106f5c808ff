/**
 * The approvals part of the benchmark (see bench/README.md, "What it does: approvals"): approval
 * requests arrive over REST at a steady rate; our app (web and worker in one process) acknowledges
 * them and posts each one's cards to a fake Slack that enforces Slack's posting limit (about one
 * chat.postMessage a second per channel, 429 + Retry-After above it). It measures the
 * acknowledgement and, per request, the time from the POST to the last of its cards.
 * Run from decision.bench.ts, which owns the database, the Redis prefix, the temp directory and
 * the cleanup; every child started here is handed to it through `track`.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { appEnv, childGroup, type ServerChild } from './lib/children.js';
import { FAKE_SLACK_CARDS_PATH, FAKE_SLACK_COUNTS_PATH, type CardLog } from './lib/fake-slack.js';
import { HttpPool, type Answer } from './lib/http.js';
import { steady } from './lib/steady.js';
import { Samples, fmtInt, fmtMs, table } from './lib/stats.js';

/** Slack's chat.postMessage limit as the fake enforces it, per channel: tokens a second, and the burst. */
export const POSTS_PER_SECOND = 1;
export const POST_BURST = 3;

const AGENT_ID = 'bench-approvals-bot';
const RULE_ID = 'big-payments';
const AMOUNT = 50_000;
const APPROVALS_CHANNEL = 'C0APPROVALS';
/** Everyone on the route, by Slack id: no users.lookupByEmail is needed. Each gets the card in a DM. */
const APPROVERS = { 'risk-owner': ['U0RISK1', 'U0RISK2'], ciso: ['U0CISO'] } as const;
/** Where every request's cards go: one DM per approver, and the approvals channel (no rule-level channel). */
const CARD_CHANNELS = [...Object.values(APPROVERS).flat(), APPROVALS_CHANNEL].sort();

const POLICY = `# Written by bench/approvals.ts for one benchmark run.
roles:
${Object.entries(APPROVERS)
  .map(([role, ids]) => `  ${role}: { members: [${ids.map((id) => `{ slack: ${id} }`).join(', ')}] }`)
  .join('\n')}
routing:
  - id: ${RULE_ID}
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [${Object.keys(APPROVERS).join(', ')}]
    quorum: 2
channels:
  approvals: { slack: ${APPROVALS_CHANNEL} }
  # Not used here; named so the app does not warn that incident notices have nowhere to go.
  incidents: { slack: C0INCIDENTS }
`;

const ACK_TIMEOUT_MS = 10_000;
/** The sample request's cards must all be posted within this long, or the part stops. */
const SAMPLE_TIMEOUT_MS = 15_000;
const CARD_POLL_MS = 250;

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const APP_SCRIPT = here('./servers/app-server.ts');
const FAKE_SLACK_SCRIPT = here('./servers/fake-slack-server.ts');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface ApprovalsBenchOptions {
  host: string;
  databaseUrl: string;
  redisUrl: string;
  /** ARMALO_QUEUE_PREFIX of this part's app; must lie under the run's prefix so cleanup deletes its keys. */
  queuePrefix: string;
  apiToken: string;
  /** Seconds of requests at `rate`. */
  duration: number;
  /** Approval requests per second. */
  rate: number;
  /** Seconds after the last acknowledgement to wait for the remaining cards. */
  drain: number;
  /** Decisions per second sent to the same instance during the run and the drain (0: none). */
  decisionRate: number;
  /** A directory the caller removes at cleanup; the policy file goes there. */
  tempDir: string;
  /** The registration body (PUT /v1/agents/{id}) of the agent making the requests. */
  agent: unknown;
  /** Receives every child this part starts, so the caller's cleanup stops it. */
  track(child: ServerChild): void;
}

/** How long the approvals part may take, at most, before the caller's watchdog should fire. */
export function approvalsBudgetSeconds(o: Pick<ApprovalsBenchOptions, 'duration' | 'drain'>): number {
  return 90 + SAMPLE_TIMEOUT_MS / 1000 + POST_BURST / POSTS_PER_SECOND + o.duration + ACK_TIMEOUT_MS / 1000 + o.drain + 30;
}

/** Wall-clock milliseconds on the clock the fake Slack stamps cards with (it is another process). */
const epoch = (monotonicMs: number) => performance.timeOrigin + monotonicMs;
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/**
 * The reference schedule: every channel posts the cards in arrival order, each as soon as its token
 * bucket (full at the start) has a token, with no processing time at all. Every request has one
 * card in each channel, so one channel's schedule is every channel's. No schedule under the same
 * limit can have a lower mean or a lower maximum (posting each next card as early as the bucket
 * allows makes every k-th post as early as possible, and taking requests in order minimises the
 * largest wait); single percentiles can be lower when some requests overtake others.
 */
function referenceSchedule(arrivalsMs: number[], start: number): number[] {
  let tokens = POST_BURST;
  let at = start;
  let last = -Infinity;
  return arrivalsMs.map((arrival) => {
    let t = Math.max(arrival, last);
    tokens = Math.min(POST_BURST, tokens + ((t - at) / 1000) * POSTS_PER_SECOND);
    at = t;
    if (tokens < 1) {
      t += ((1 - tokens) / POSTS_PER_SECOND) * 1000;
      tokens = 1;
      at = t;
    }
    tokens -= 1;
    last = t;
    return (t - arrival) / 1000;
  });
}

/**
 * Nearest-rank percentiles of values some of which are only known to be larger than a bound
 * (requests whose cards did not all arrive in time). Such a percentile prints as "> bound".
 */
function censoredPercentiles(known: number[], censoredBounds: number[], qs: number[]): string[] {
  const n = known.length + censoredBounds.length;
  const sorted = [...known].sort((a, b) => a - b);
  const bounds = [...censoredBounds].sort((a, b) => a - b);
  return qs.map((q) => {
    if (n === 0) return 'n/a';
    const rank = Math.min(n, Math.max(1, Math.ceil(q * n)));
    if (rank <= sorted.length) return sorted[rank - 1]!.toFixed(2);
    // Rank k lies past the known values. Fewer than k values can be below the (k - known)-th
    // smallest bound: all known ones, and only unknown ones with a smaller bound. So the k-th
    // smallest value is at least that bound.
    return `>${bounds[rank - sorted.length - 1]!.toFixed(2)}`;
  });
}

/** A decision a rule covers but the context does not trigger: the grant answers `allow`. */
const DECISION_BODY = JSON.stringify({ agentId: AGENT_ID, action: 'payments:transfer', context: { amount: 500 } });

/**
 * Decisions at a fixed rate on the instance doing the card work, from `start` until `stop()`:
 * each one's latency from when it was due (a stalled event loop delays the answer, and the
 * decisions due behind it), split by the phase it was due in.
 */
function decisionProbe(pool: HttpPool, headers: Record<string, string>, rate: number, start: number) {
  const interval = 1000 / rate;
  const byPhase = { run: new Samples(), drain: new Samples() };
  const msByPhase: Record<'run' | 'drain', number[]> = { run: [], drain: [] };
  let phase: 'run' | 'drain' = 'run';
  let stopped = false;
  let notOk = 0;
  const inflight = new Set<Promise<void>>();
  const done = (async () => {
    for (let i = 0; !stopped; i++) {
      const due = start + i * interval;
      const wait = due - performance.now();
      if (wait > 0.5) await sleep(wait);
      if (stopped) break;
      const samples = byPhase[phase];
      const ms = msByPhase[phase];
      const p: Promise<void> = pool
        .post('/v1/decisions', headers, DECISION_BODY, ACK_TIMEOUT_MS)
        .then(
          (ans) => {
            if (ans.status !== 200 || !ans.body.includes('"decision":"allow"')) notOk++;
            // From when it was due, or when it left if the loop sent it a little early.
            const took = ans.doneAt - Math.min(due, ans.sentAt);
            samples.add(took);
            ms.push(took);
          },
          () => {
            notOk++;
          },
        )
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await Promise.all(inflight);
  })();
  return {
    drainStarts: () => (phase = 'drain'),
    stop: async () => {
      stopped = true;
      await done;
      return { byPhase, msByPhase, notOk };
    },
  };
}

export async function runApprovalsBench(o: ApprovalsBenchOptions): Promise<void> {
  const policyFile = path.join(o.tempDir, 'approvals-policy.yaml');
  writeFileSync(policyFile, POLICY);
  const { children, start, ensureAlive } = childGroup(o.track, 'approvals');
  const pools: HttpPool[] = [];

  try {
    const fake = await start('fake-slack (limited)', FAKE_SLACK_SCRIPT, { HOST: o.host, POST_PER_SECOND: String(POSTS_PER_SECOND), POST_BURST: String(POST_BURST) });
    const fakeUrl = `http://${o.host}:${fake.port}`;
    const app = await start('app (all)', APP_SCRIPT, appEnv(o, 'all', {
      ARMALO_POLICY_FILE: policyFile,
      SLACK_SIGNING_SECRET: 'bench-approvals-signing-secret-unused',
      SLACK_BOT_TOKEN: 'xoxb-bench-approvals',
      SLACK_API_URL: `${fakeUrl}/api/`,
    }));
    const appUrl = `http://${o.host}:${app.port}`;
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${o.apiToken}` };

    const put = await fetch(`${appUrl}/v1/agents/${AGENT_ID}`, { method: 'PUT', headers, body: JSON.stringify(o.agent), signal: AbortSignal.timeout(5000) });
    if (put.status !== 201 && put.status !== 200) throw new Error(`registering agent ${AGENT_ID} failed: ${put.status} ${await put.text()}`);

    // Cards as the fake recorded them, fetched incrementally: request id → channel → first post time.
    const cards = new Map<string, Map<string, number>>();
    let duplicates = 0;
    const strays: string[] = [];
    let fetched = 0;
    let limited: Record<string, number> = {};
    const pollCards = async () => {
      const log = (await (await fetch(`${fakeUrl}${FAKE_SLACK_CARDS_PATH}?from=${fetched}`, { signal: AbortSignal.timeout(5000) })).json()) as CardLog;
      fetched = log.next;
      limited = log.limited;
      for (const [id, channel, at] of log.cards) {
        const byChannel = cards.get(id) ?? new Map<string, number>();
        cards.set(id, byChannel);
        if (!CARD_CHANNELS.includes(channel)) {
          if (strays.length < 5) strays.push(`request ${id}: a card in ${channel}`);
          continue;
        }
        if (byChannel.has(channel)) duplicates++;
        else byChannel.set(channel, at);
      }
    };
    const complete = (id: string) => (cards.get(id)?.size ?? 0) === CARD_CHANNELS.length;

    const pool = new HttpPool(o.host, app.port, 16);
    pools.push(pool);
    let n = 0;
    const ask = () =>
      pool
        .post(
          '/v1/approval-requests',
          headers,
          JSON.stringify({ agentId: AGENT_ID, action: 'payments:transfer', context: { amount: AMOUNT }, justification: `benchmark payout ${++n} to the reinsurer` }),
          ACK_TIMEOUT_MS,
        )
        .catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    /** The request's id when the answer is a 201 with a pending request on the expected rule, else what is wrong. */
    const check = (ans: Answer | Error): { id: string } | { problem: string } => {
      if (ans instanceof Error) return { problem: ans.message };
      if (ans.status !== 201) return { problem: `HTTP ${ans.status}: ${ans.body.slice(0, 300)}` };
      let view: { id?: unknown; status?: unknown; route?: { ruleId?: unknown; requirements?: { approvers?: unknown }[] } };
      try {
        view = JSON.parse(ans.body) as typeof view;
      } catch {
        return { problem: `not JSON: ${ans.body.slice(0, 300)}` };
      }
      if (typeof view.id !== 'string' || !UUID.test(view.id) || view.status !== 'pending' || view.route?.ruleId !== RULE_ID) {
        return { problem: `expected a pending request on rule ${RULE_ID}: ${ans.body.slice(0, 300)}` };
      }
      return { id: view.id };
    };

    // One request first: it must be routed to the expected people and get all its cards.
    const sampleAnswer = await ask();
    const sample = check(sampleAnswer);
    if ('problem' in sample) throw new Error(`approvals: the sample request was not accepted as expected: ${sample.problem}`);
    const approvers = (JSON.parse((sampleAnswer as Answer).body) as { route: { requirements: { approvers: string[] }[] } }).route.requirements.flatMap((r) => r.approvers).sort();
    const expectedApprovers = Object.values(APPROVERS).flat().map((id) => `slack:${id}`).sort();
    if (JSON.stringify(approvers) !== JSON.stringify(expectedApprovers)) {
      throw new Error(`approvals: the sample request is routed to ${approvers.join(', ')}, expected ${expectedApprovers.join(', ')}`);
    }
    const sampleDeadline = performance.now() + SAMPLE_TIMEOUT_MS;
    while (!complete(sample.id)) {
      if (performance.now() > sampleDeadline) {
        throw new Error(`approvals: the sample request's cards did not all arrive within ${SAMPLE_TIMEOUT_MS} ms: got ${[...(cards.get(sample.id)?.keys() ?? [])].join(', ') || 'none'}`);
      }
      await sleep(100);
      await pollCards();
    }
    ensureAlive();
    // The measured run starts with every channel's bucket full, as in a quiet workspace.
    await sleep((POST_BURST / POSTS_PER_SECOND) * 1000 + 500);

    const acks = new Samples();
    const ackMs: number[] = [];
    const problems: string[] = [];
    let notOk = 0;
    /** Accepted requests: id and when its POST was handed to node:http (performance.now()). */
    const accepted: { id: string; sentAt: number }[] = [];
    const count = o.rate * o.duration;
    let lastAnswerAt = 0;
    const fire = async () => {
      const ans = await ask();
      if (!(ans instanceof Error)) lastAnswerAt = Math.max(lastAnswerAt, ans.doneAt);
      const r = check(ans);
      if ('problem' in r) {
        notOk++;
        if (problems.length < 5) problems.push(r.problem);
        return;
      }
      acks.add((ans as Answer).ms);
      ackMs.push((ans as Answer).ms);
      accepted.push({ id: r.id, sentAt: (ans as Answer).sentAt });
    };

    // The decision path warms up first: the probe measures the card work's effect, not first calls.
    const decisionPool = new HttpPool(o.host, app.port, 8);
    pools.push(decisionPool);
    if (o.decisionRate > 0) {
      const warm = performance.now() + 20;
      await steady(Math.min(500, o.decisionRate * 2), 1000 / Math.max(o.decisionRate, 250), warm, async () => {
        await decisionPool.post('/v1/decisions', headers, DECISION_BODY, ACK_TIMEOUT_MS).catch(() => undefined);
      });
    }

    const cpuBefore = await app.cpuUsage();
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const t0 = performance.now() + 20;
    const decisions = o.decisionRate > 0 ? decisionProbe(decisionPool, headers, o.decisionRate, t0) : undefined;
    await steady(count, 1000 / o.rate, t0, fire);
    decisions?.drainStarts();
    loopDelay.disable();
    const runEnd = performance.now();
    ensureAlive();
    const acceptWindow = Math.max(o.duration, (lastAnswerAt - t0) / 1000);

    // Drain: wait (bounded) for the cards of every accepted request.
    const deadline = runEnd + o.drain * 1000;
    for (;;) {
      await pollCards();
      if (accepted.every((r) => complete(r.id)) || performance.now() >= deadline) break;
      await sleep(Math.min(CARD_POLL_MS, Math.max(0, deadline - performance.now())));
    }
    const drainEnd = performance.now();
    const decided = await decisions?.stop();
    const cpuAfter = await app.cpuUsage();
    ensureAlive();

    // Time to last card, per accepted request, in seconds; unfinished ones only have a lower bound.
    const done: number[] = [];
    const unfinishedBounds: number[] = [];
    let lastCardAt = -Infinity;
    for (const r of accepted) {
      const byChannel = cards.get(r.id);
      const last = byChannel && byChannel.size === CARD_CHANNELS.length ? Math.max(...byChannel.values()) : Infinity;
      if (last <= epoch(deadline)) {
        done.push((last - epoch(r.sentAt)) / 1000);
        lastCardAt = Math.max(lastCardAt, last);
      } else {
        unfinishedBounds.push((epoch(deadline) - epoch(r.sentAt)) / 1000);
      }
    }
    const qs = [0.5, 0.95, 0.99, 1];
    const ttl = censoredPercentiles(done, unfinishedBounds, qs);
    // Known values plus lower bounds: the true mean is above this when some are unfinished.
    const ttlMean = `${unfinishedBounds.length ? '>' : ''}${fmtMs(mean([...done, ...unfinishedBounds]))}`;
    const reference = new Samples();
    const referenceSeconds = referenceSchedule(accepted.map((r) => r.sentAt).sort((a, b) => a - b), t0);
    for (const s of referenceSeconds) reference.add(s);
    const ackStats = acks.percentiles(qs);
    const referenceStats = reference.percentiles(qs);

    // Cards of the measured requests per channel, and how fast each channel took them.
    const measured = new Set(accepted.map((r) => r.id));
    const perChannel = CARD_CHANNELS.map((channel) => {
      const times = [...cards.entries()]
        .filter(([id]) => measured.has(id))
        .map(([, byChannel]) => byChannel.get(channel))
        .filter((t): t is number => t !== undefined && t <= epoch(deadline))
        .sort((a, b) => a - b);
      const span = times.length > 1 ? (times.at(-1)! - times[0]!) / 1000 : NaN;
      return { channel, posted: times.length, perSecond: (times.length - 1) / span, limited: limited[channel] ?? 0 };
    });
    const counts = await fetch(`${fakeUrl}${FAKE_SLACK_COUNTS_PATH}`, { signal: AbortSignal.timeout(5000) })
      .then((r) => r.json() as Promise<Record<string, number>>)
      .catch(() => ({}) as Record<string, number>);
    const total429 = Object.values(limited).reduce((a, b) => a + b, 0);

    const label = `approvals (ARMALO_ROLE=all; fake Slack ${POSTS_PER_SECOND} post/s/channel, burst ${POST_BURST})`;
    const fmt = (x: number | undefined) => (x === undefined ? 'n/a' : fmtMs(x));
    console.log('');
    console.log(
      table(
        [[label, 'count', 'p50', 'p95', 'p99', 'max', 'mean', 'not ok']],
        [
          [`ack POST /v1/approval-requests @${fmtInt(o.rate)}/s, ms`, fmtInt(count), ...ackStats.map(fmt), fmtMs(mean(ackMs)), String(notOk)],
          [`time to last card (${CARD_CHANNELS.length} per request), s`, fmtInt(accepted.length), ...ttl, ttlMean, String(unfinishedBounds.length)],
          ['  reference: in order, as fast as the limit allows, s', fmtInt(accepted.length), ...referenceStats.map(fmt), fmtMs(mean(referenceSeconds)), '-'],
          ...(decided
            ? (['run', 'drain'] as const).map((phase) => [
                `decision @${fmtInt(o.decisionRate)}/s on the same instance, ${phase === 'run' ? 'while requests arrive' : 'during the drain'}, ms`,
                fmtInt(decided.byPhase[phase].count),
                ...decided.byPhase[phase].percentiles(qs).map(fmt),
                fmtMs(mean(decided.msByPhase[phase])),
                phase === 'run' ? String(decided.notOk) : '',
              ])
            : []),
        ],
      ),
    );
    console.log(
      `(ack = POST sent → its whole 201 received; time to last card = POST sent → Slack accepting the last of the request's ${CARD_CHANNELS.length} cards ` +
        `(DMs to ${Object.values(APPROVERS).flat().join(', ')}, and ${APPROVALS_CHANNEL}); reference = the same arrivals posted in order, each card as soon as the channel's ` +
        `bucket allows, no processing time (no schedule has a lower max or mean); one ${o.duration} s run; a p99 of fewer than 100 samples is the maximum; ` +
        `">x": not all cards by the end of the drain, so more than x)` +
        (decided ? `; decision = from when it was due (fixed rate, open loop) to its whole answer, a covered action the context does not trigger (allow); its not ok counts both phases` : ''),
    );
    console.log(
      `accepted: ${fmtInt(accepted.length)} of ${fmtInt(count)} sent, sustained ${(accepted.length / acceptWindow).toFixed(2)} requests/s ` +
        `(201s ÷ ${acceptWindow.toFixed(1)} s, the longer of the run and first POST → last answer; offered ${fmtInt(o.rate)}/s)`,
    );
    const allDone = unfinishedBounds.length === 0;
    console.log(
      `cards complete: ${fmtInt(done.length)} of ${fmtInt(accepted.length)} request(s) had all ${CARD_CHANNELS.length} cards within the run + drain ` +
        (allDone
          ? `(the last card came ${((lastCardAt - epoch(runEnd)) / 1000).toFixed(1)} s after the last acknowledgement; drain limit ${o.drain} s)`
          : `(drain limit ${o.drain} s reached ${((drainEnd - runEnd) / 1000).toFixed(1)} s after the last acknowledgement; ${fmtInt(unfinishedBounds.length)} request(s) still queued)`),
    );
    console.log(
      `per channel, cards of measured requests (posted, rate between first and last, 429s): ` +
        perChannel.map((c) => `${c.channel} ${c.posted} at ${Number.isFinite(c.perSecond) ? c.perSecond.toFixed(2) : 'n/a'}/s, ${c.limited} × 429`).join('; ') +
        `; total 429s ${fmtInt(total429)} (${(total429 / Math.max(1, counts['chat.postMessage'] ?? 1) * 100).toFixed(0)}% of chat.postMessage calls)`,
    );
    console.log(
      `fake Slack Web API calls from the worker: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}; ` +
        `app CPU from the run's start to the end of the drain ${((cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system) / 1e6).toFixed(1)} s ` +
        `over ${((drainEnd - t0) / 1000).toFixed(1)} s; benchmark process event-loop stall p99 during the run ${fmtMs(Math.max(0, loopDelay.percentile(99) / 1e6 - 5))} ms`,
    );
    const capRequests = POSTS_PER_SECOND;
    console.log(
      `expected: every request puts one card in each of the same ${CARD_CHANNELS.length} channels, so at ${POSTS_PER_SECOND} post/s per channel the cards of at most ` +
        `~${capRequests} request/s can go out (after a burst of ${POST_BURST}); at ${fmtInt(o.rate)}/s offered, the backlog grows by ~${Math.max(0, o.rate - capRequests)} request(s) each second of the run`,
    );
    console.log(
      `goal: no goal set; reported (time to last card p95 ${ttl[1]} s, reference ${fmt(referenceStats[1])} s; ack p99 ${fmt(ackStats[2])} ms)`,
    );

    // A wrong acknowledgement, a second copy of a card or a card in the wrong place is a broken server.
    const wrong = [
      ...(notOk ? [`${notOk} acknowledgement(s) were not a 201 with a pending request: ${problems.join(' | ')}`] : []),
      ...(decided?.notOk ? [`${decided.notOk} decision(s) were not a 200 allow`] : []),
      ...(duplicates ? [`${duplicates} card(s) posted twice to the same channel for the same request`] : []),
      ...(strays.length ? [`cards outside the route's channels: ${strays.join(' | ')}`] : []),
    ];
    if (wrong.length) throw new Error(`approvals: wrong answers, so the numbers above describe a broken server:\n  ${wrong.join('\n  ')}`);
  } finally {
    for (const p of pools) p.close();
    // The app before the fake Slack, so its worker does not lose its Slack API mid-job.
    for (const child of [...children].reverse()) await child.stop();
  }
}
