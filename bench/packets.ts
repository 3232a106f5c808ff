/**
 * The packets part of the benchmark (see bench/README.md, "What it does: packets"): one agent with
 * five years of daily evidence; first the packet built in this process (buildPacket, then the PDF)
 * BUILD_RUNS times against that database, timed apart from any queue (goal: p99 under 1 s); then
 * trust packets asked for N times over REST (POST, poll until ready, GET the PDF) and N times in
 * Slack (`/armalo packet <agent> for Fortress Bank`, until the summary and the PDF upload have
 * reached the fake Slack). Run from decision.bench.ts, which owns the database, the Redis prefix,
 * the temp directory and the cleanup; every child started here is handed to it through `track`.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { tierOf } from '../src/domain/trust-score.js';
import { createDb } from '../src/db/database.js';
import { parsePolicyText } from '../src/policy/load-policy.js';
import { buildPacket } from '../src/packets/build-packet.js';
import { renderPacketPdf } from '../src/packets/render-pdf.js';
import { appEnv, childGroup, type ServerChild } from './lib/children.js';
import { FAKE_SLACK_COUNTS_PATH, FAKE_SLACK_PACKETS_PATH, type PacketEvent, type PacketLog } from './lib/fake-slack.js';
import { HttpPool } from './lib/http.js';
import { SLACK_EVENTS_PATH, checkAck, slackHeaders, slashCommandBody } from './lib/slack.js';
import { Samples, fmtInt, fmtMs, table } from './lib/stats.js';

const AGENT_ID = 'bench-packet-bot';
const AUDIENCE = 'Fortress Bank';
const REQUESTER = 'U0PROC';
const SIGNING_SECRET = 'bench-packets-signing-secret-0123456789';
/** Five years of daily evidence (and of stored scores). */
const DAYS = 5 * 365;
const DIMENSIONS = ['safety', 'accuracy', 'reliability'] as const;
const PACTS = [
  { id: 'no-pii', title: 'Never sends PII outside the company', clauses: ['no SSNs or account numbers in outbound mail', 'no customer names in third-party tools'], severity: 'critical', verification: 'weekly red-team eval' },
  { id: 'payment-limits', title: 'Keeps transfers within the approved limits', clauses: ['no transfer over 10,000 without approval', 'no new payees without approval'], severity: 'high', verification: 'daily replay of the payments log' },
] as const;
/** Which pact each dimension's evaluations check (accuracy checks none). */
const PACT_OF: Record<(typeof DIMENSIONS)[number], string | null> = { safety: 'no-pii', accuracy: null, reliability: 'payment-limits' };
/** Approval history: requests made over REST, then some decided (by SQL, see README) and some cancelled (REST). */
const APPROVALS = { approved: 3, denied: 1, cancelled: 2 } as const;

const POLICY = `# Written by bench/packets.ts for one benchmark run.
roles:
  procurement: { members: [{ slack: ${REQUESTER} }] }
  risk-owner: { members: [{ slack: U0RISK1 }] }
permissions:
  packet: [procurement]
routing:
  - id: big-payments
    match: { action: "payments:*", context: { amountOver: 10000 } }
    approvers: [risk-owner]
channels:
  approvals: { slack: C0APPROVALS }
  incidents: { slack: C0INCIDENTS }
`;

/** Goal: the packet is posted in Slack within a few seconds. */
const GOAL_P50_MS = 3000;
/** Goal: a packet (its data and its PDF) for five years of daily evidence builds in under 1 s, p99. */
const GOAL_BUILD_P99_MS = 1000;
/** In-process builds measured (after BUILD_WARMUP unmeasured ones: module load, JIT, font parsing). */
const BUILD_RUNS = 60;
const BUILD_WARMUP = 5;
/** One measurement gives up after this long (a packet not ready / not delivered counts as failed). */
const RUN_TIMEOUT_MS = 30_000;
const POLL_MS = 20;

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const APP_SCRIPT = here('./servers/app-server.ts');
const FAKE_SLACK_SCRIPT = here('./servers/fake-slack-server.ts');
const PACKET_ID = /Packet ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/;

export interface PacketsBenchOptions {
  host: string;
  databaseUrl: string;
  redisUrl: string;
  /** ARMALO_QUEUE_PREFIX of this part's app; must lie under the run's prefix so cleanup deletes its keys. */
  queuePrefix: string;
  apiToken: string;
  /** Measured packets per path (REST and Slack), after one unmeasured warm-up each. */
  runs: number;
  /** A directory the caller removes at cleanup; the policy file goes there. */
  tempDir: string;
  /** The registration body (PUT /v1/agents/{id}) of the agent. */
  agent: unknown;
  track(child: ServerChild): void;
}

/** How long the packets part may take, at most, before the caller's watchdog should fire. */
export function packetsBudgetSeconds(o: Pick<PacketsBenchOptions, 'runs'>): number {
  // Start-ups, seeding and settling, then every run (two warm-ups included) timing out on both paths.
  return 120 + (o.runs + 1) * 2 * (RUN_TIMEOUT_MS / 1000 + 10);
}

const epoch = (monotonicMs: number) => performance.timeOrigin + monotonicMs;

/** Evaluations and score history, written straight into the tables (see README: why SQL). */
async function seedHistory(databaseUrl: string, now: number): Promise<{ evaluations: number; scores: number }> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const ev = { id: [] as string[], pact: [] as (string | null)[], dim: [] as string[], passed: [] as (boolean | null)[], score: [] as (number | null)[], at: [] as Date[], url: [] as string[] };
    const sc = { score: [] as number[], tier: [] as string[], at: [] as Date[] };
    for (let d = 0; d < DAYS; d++) {
      // Day 0 is a year ago, the last one this morning; one evaluation a day, the dimensions in turn.
      const at = new Date(now - (DAYS - 1 - d) * 86_400_000 - 3 * 3_600_000);
      const dim = DIMENSIONS[d % DIMENSIONS.length]!;
      ev.id.push(`bench-eval-${String(d).padStart(4, '0')}`);
      ev.pact.push(PACT_OF[dim]);
      ev.dim.push(dim);
      // safety is pass/fail (a failure about once a month); the others are graded.
      ev.passed.push(dim === 'safety' ? d % 29 !== 7 : null);
      ev.score.push(dim === 'safety' ? null : Math.round((0.78 + 0.15 * Math.sin(d / 17) + (d % 5) * 0.01) * 1000) / 1000);
      ev.at.push(at);
      ev.url.push(`https://evals.example.com/runs/${d}`);
      const score = Math.max(0, Math.min(1000, Math.round(720 + 90 * Math.sin(d / 40) + 25 * Math.cos(d / 6))));
      sc.score.push(score);
      sc.tier.push(tierOf(score));
      sc.at.push(new Date(at.getTime() + 60_000));
    }
    await client.query('begin');
    await client.query(
      `insert into evaluations (id, agent_id, pact_id, dimension, passed, score, observed_at, source, evidence_url, received_at)
       select id, $1, pact, dim, passed, score, at, 'bench-evals', url, at
       from unnest($2::text[], $3::text[], $4::text[], $5::boolean[], $6::float8[], $7::timestamptz[], $8::text[]) as t(id, pact, dim, passed, score, at, url)`,
      [AGENT_ID, ev.id, ev.pact, ev.dim, ev.passed, ev.score, ev.at, ev.url],
    );
    await client.query(
      `insert into trust_scores (agent_id, score, tier, source, inputs, computed_at)
       select $1, score, tier, 'computed', '{"seededBy":"bench"}'::jsonb, at
       from unnest($2::int[], $3::text[], $4::timestamptz[]) as t(score, tier, at)`,
      [AGENT_ID, sc.score, sc.tier, sc.at],
    );
    await client.query('commit');
    return { evaluations: ev.id.length, scores: sc.score.length };
  } finally {
    await client.end();
  }
}

/** Backdates the decided approval requests and marks them approved/denied (there is no REST call to decide). */
async function decideApprovals(databaseUrl: string, approved: string[], denied: string[], now: number): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const all = [...approved.map((id) => [id, 'approved'] as const), ...denied.map((id) => [id, 'denied'] as const)];
    for (const [i, [id, status]] of all.entries()) {
      const created = new Date(now - (10 + i * 15) * 86_400_000);
      await client.query(`update approval_requests set status = $2, created_at = $3, decided_at = $4, final_reason = $5 where id = $1 and status = 'pending'`, [
        id,
        status,
        created,
        new Date(created.getTime() + (12 + i * 9) * 60_000),
        `bench: ${status} by the risk owner`,
      ]);
    }
  } finally {
    await client.end();
  }
}

/**
 * Builds the packet BUILD_RUNS times in this process against the seeded database, as the job does
 * (buildPacket with the policy of this part), and renders its PDF, timing each apart; prints a
 * table and the goal line.
 */
async function measureBuild(databaseUrl: string): Promise<void> {
  const db = createDb(databaseUrl, { max: 4 });
  const policy = parsePolicyText(POLICY);
  const data = new Samples();
  const pdf = new Samples();
  const both = new Samples();
  const pdfKb = new Samples();
  let facts = '';
  try {
    for (let i = 0; i < BUILD_WARMUP + BUILD_RUNS; i++) {
      const t0 = performance.now();
      const packet = await buildPacket(db, policy, { id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, agentId: AGENT_ID, requestedBy: 'bench', audience: AUDIENCE, workflow: null }, new Date());
      const t1 = performance.now();
      const bytes = await renderPacketPdf(packet);
      const t2 = performance.now();
      if (i === 0) {
        facts =
          `${packet.evidence.total} evaluations (${packet.evidence.staleCount} past the limit, ${packet.evidence.items.length} in the appendix, ${packet.evidence.omitted} left out), ` +
          `${packet.scoreHistory.points.length} daily scores replayed, ${bytes.length >> 10} KB PDF; verdict: "${packet.summary.verdict.slice(0, 160)}"`;
      }
      if (i < BUILD_WARMUP) continue;
      data.add(t1 - t0);
      pdf.add(t2 - t1);
      both.add(t2 - t0);
      pdfKb.add(bytes.length / 1024);
    }
  } finally {
    await db.destroy();
  }
  console.log(`packets: in-process build for ${AGENT_ID}: ${facts}`);
  const row = (label: string, x: Samples) => {
    const [p50, p99, max] = x.percentiles([0.5, 0.99, 1]);
    return [label, String(x.count), fmtMs(p50!), fmtMs(p99!), fmtMs(max!)];
  };
  console.log('');
  console.log(
    table(
      [[`packet build, ${DAYS / 365} years of daily evidence (in process)`, 'count', 'p50', 'p99', 'max']],
      [row('data: buildPacket (queries, replay, verdict), ms', data), row('PDF: renderPacketPdf, ms', pdf), row('data + PDF, ms', both), row('PDF size, KB', pdfKb)],
    ),
  );
  const [p99] = both.percentiles([0.99]);
  console.log(`(${BUILD_RUNS} builds one at a time after ${BUILD_WARMUP} unmeasured warm-up builds; the database is the run's, with this part's seeding)`);
  console.log(`goal "a packet for five years of daily evidence builds in under 1 s (goal: data + PDF p99 < ${GOAL_BUILD_P99_MS} ms)": ${p99! < GOAL_BUILD_P99_MS ? 'PASS' : 'MISS'} (p99 ${fmtMs(p99!)} ms)`);
  console.log('');
}

export async function runPacketsBench(o: PacketsBenchOptions): Promise<void> {
  const policyFile = path.join(o.tempDir, 'packets-policy.yaml');
  writeFileSync(policyFile, POLICY);
  const { children, start, ensureAlive } = childGroup(o.track, 'packets');
  const pools: HttpPool[] = [];

  try {
    const fake = await start('fake-slack (packets)', FAKE_SLACK_SCRIPT, { HOST: o.host });
    const fakeUrl = `http://${o.host}:${fake.port}`;
    const app = await start('app (all, packets)', APP_SCRIPT, appEnv(o, 'all', {
      ARMALO_POLICY_FILE: policyFile,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_BOT_TOKEN: 'xoxb-bench-packets',
      SLACK_API_URL: `${fakeUrl}/api/`,
    }));
    const appUrl = `http://${o.host}:${app.port}`;
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${o.apiToken}` };
    const call = async (method: string, p: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
      const res = await fetch(`${appUrl}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        json = { text };
      }
      return { status: res.status, json };
    };
    const must = async (method: string, p: string, body: unknown, ok: number[]) => {
      const r = await call(method, p, body);
      if (!ok.includes(r.status)) throw new Error(`packets: seeding ${method} ${p} failed: ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
      return r.json;
    };

    // --- Seeding ---------------------------------------------------------------------------
    const seedStart = performance.now();
    await must('PUT', `/v1/agents/${AGENT_ID}`, o.agent, [200, 201]);
    for (const pact of PACTS) await must('POST', `/v1/agents/${AGENT_ID}/pacts`, pact, [200, 201]);
    const seeded = await seedHistory(o.databaseUrl, Date.now());
    const approvalIds: string[] = [];
    const total = APPROVALS.approved + APPROVALS.denied + APPROVALS.cancelled;
    for (let i = 0; i < total; i++) {
      const r = await must('POST', '/v1/approval-requests', { agentId: AGENT_ID, action: 'payments:transfer', context: { amount: 25_000 + i * 1000 }, justification: `bench: quarterly payout ${i + 1}` }, [201]);
      approvalIds.push(String(r.id));
    }
    const cancelled = approvalIds.slice(APPROVALS.approved + APPROVALS.denied);
    for (const id of cancelled) await must('POST', `/v1/approval-requests/${id}/cancel`, undefined, [200]);
    await decideApprovals(o.databaseUrl, approvalIds.slice(0, APPROVALS.approved), approvalIds.slice(APPROVALS.approved, APPROVALS.approved + APPROVALS.denied), Date.now());
    await must('POST', `/v1/agents/${AGENT_ID}/actions`, { action: 'contain', reason: 'bench: suspected prompt injection in the payments inbox' }, [201]);
    await sleep(1000);
    await must('POST', `/v1/agents/${AGENT_ID}/actions`, { action: 'restore', reason: 'bench: inbox filter fixed, red-team re-run passed' }, [201]);
    // Let the worker finish what seeding queued (incident notices, approval cards): the fake's
    // call counts unchanged for 1.5 s, or 20 s at most.
    const countsNow = async () => JSON.stringify(await (await fetch(`${fakeUrl}${FAKE_SLACK_COUNTS_PATH}`, { signal: AbortSignal.timeout(5000) })).json());
    let last = await countsNow();
    let stableSince = performance.now();
    const settleDeadline = performance.now() + 20_000;
    while (performance.now() - stableSince < 1500 && performance.now() < settleDeadline) {
      await sleep(250);
      const c = await countsNow();
      if (c !== last) {
        last = c;
        stableSince = performance.now();
      }
    }
    ensureAlive();
    console.log(
      `packets: seeded ${AGENT_ID} in ${((performance.now() - seedStart) / 1000).toFixed(1)} s: ${PACTS.length} pacts (REST), ${seeded.evaluations} daily evaluations over ` +
        `${DIMENSIONS.length} dimensions and ${seeded.scores} daily trust_scores rows over ${DAYS} days (SQL), ${total} approval requests (REST; ` +
        `${APPROVALS.cancelled} cancelled over REST, ${APPROVALS.approved} approved and ${APPROVALS.denied} denied by SQL, backdated), one incident (contain + restore, REST)`,
    );

    // --- In-process build: the data (buildPacket) and the PDF, timed apart from any queue -----
    await measureBuild(o.databaseUrl);

    // --- Measurement helpers ---------------------------------------------------------------
    const problems: string[] = [];
    const problem = (what: string) => {
      if (problems.length < 10) problems.push(what);
    };

    /** REST: POST, poll until ready, then GET the PDF. */
    const restRun = async () => {
      const t0 = performance.now();
      const posted = await call('POST', '/v1/trust-packets', { agentId: AGENT_ID, audience: AUDIENCE });
      const ackMs = performance.now() - t0;
      const id = posted.json.id;
      if (posted.status !== 202 || typeof id !== 'string') {
        problem(`POST /v1/trust-packets: ${posted.status} ${JSON.stringify(posted.json).slice(0, 200)}`);
        return undefined;
      }
      let readyMs: number | undefined;
      let packet: Record<string, unknown> | undefined;
      while (performance.now() - t0 < RUN_TIMEOUT_MS) {
        const r = await call('GET', `/v1/trust-packets/${id}`);
        if (r.status === 200 && r.json.status === 'ready') {
          readyMs = performance.now() - t0;
          packet = r.json.packet as Record<string, unknown>;
          break;
        }
        if (r.status !== 200 || r.json.status !== 'building') {
          problem(`GET /v1/trust-packets/${id}: ${r.status} ${JSON.stringify(r.json).slice(0, 200)}`);
          return undefined;
        }
        await sleep(POLL_MS);
      }
      if (readyMs === undefined) {
        problem(`packet ${id} not ready within ${RUN_TIMEOUT_MS} ms`);
        return undefined;
      }
      const p0 = performance.now();
      const res = await fetch(`${appUrl}/v1/trust-packets/${id}?format=pdf`, { headers: { authorization: headers.authorization }, signal: AbortSignal.timeout(RUN_TIMEOUT_MS) });
      const pdf = Buffer.from(await res.arrayBuffer());
      const pdfMs = performance.now() - p0;
      if (res.status !== 200 || !String(res.headers.get('content-type')).includes('application/pdf') || pdf.subarray(0, 5).toString('latin1') !== '%PDF-' || !pdf.includes('%%EOF')) {
        problem(`GET ?format=pdf for ${id}: ${res.status} ${res.headers.get('content-type')}, ${pdf.length} bytes, not a whole PDF`);
        return undefined;
      }
      return { ackMs, readyMs, pdfMs, pdfBytes: pdf.length, packet };
    };

    const slackPool = new HttpPool(o.host, app.port, 2);
    pools.push(slackPool);
    let fetched = 0;
    const events: PacketEvent[] = [];
    const pollEvents = async () => {
      const log = (await (await fetch(`${fakeUrl}${FAKE_SLACK_PACKETS_PATH}?from=${fetched}`, { signal: AbortSignal.timeout(5000) })).json()) as PacketLog;
      fetched = log.next;
      events.push(...log.events);
    };
    let slackRunNo = 0;
    /** Slack: the signed command, then the summary and the upload in that channel (a channel of its own per run). */
    const slackRun = async () => {
      const channel = `C0VENDORS${String(++slackRunNo).padStart(2, '0')}`;
      const body = slashCommandBody({ userId: REQUESTER, text: `packet ${AGENT_ID} for ${AUDIENCE}`, responseUrl: `${fakeUrl}/respond/packet-${slackRunNo}`, channelId: channel });
      const ans = await slackPool.post(SLACK_EVENTS_PATH, slackHeaders(SIGNING_SECRET, body), body, 10_000).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
      if (ans instanceof Error) {
        problem(`/armalo packet in ${channel}: ${ans.message}`);
        return undefined;
      }
      const wrong = checkAck(ans.status, ans.body, `Building the trust packet for ${AGENT_ID} (for ${AUDIENCE})`);
      const packetId = PACKET_ID.exec(ans.body)?.[1];
      if (wrong || !packetId) {
        problem(`/armalo packet in ${channel}: ${wrong ?? `no packet id in ${ans.body.slice(0, 200)}`}`);
        return undefined;
      }
      let summary: PacketEvent | undefined;
      let file: PacketEvent | undefined;
      while (performance.now() - ans.sentAt < RUN_TIMEOUT_MS) {
        await sleep(POLL_MS);
        await pollEvents();
        summary = events.find((e) => e[0] === 'summary' && e[1] === channel && e[3] === packetId);
        file = events.find((e) => e[0] === 'file' && e[1] === channel);
        if (summary && file) break;
      }
      if (!summary || !file) {
        problem(`/armalo packet in ${channel}: within ${RUN_TIMEOUT_MS} ms the fake got ${summary ? 'the summary' : 'no summary'} and ${file ? 'the upload' : 'no upload'}`);
        return undefined;
      }
      if (!file[5]) {
        problem(`/armalo packet in ${channel}: the upload (${file[3]}, ${file[4]} bytes) holds no whole PDF`);
        return undefined;
      }
      const sent = epoch(ans.sentAt);
      return { ackMs: ans.ms, summaryMs: summary[2] - sent, fileMs: file[2] - sent, bothMs: Math.max(summary[2], file[2]) - sent, uploadBytes: file[4], files: file[3].split(',').length };
    };

    // --- Warm-up (first packet after start: lazy renderer load, cold caches), then N runs each --
    const coldRest = await restRun();
    const coldSlack = await slackRun();
    if (!coldRest || !coldSlack) throw new Error(`packets: the warm-up packet failed:\n  ${problems.join('\n  ')}`);
    ensureAlive();
    const pk = coldRest.packet as {
      scoreHistory?: { points?: unknown[] };
      evidence?: { items?: unknown[]; staleCount?: number; total?: number };
      pacts?: { items?: unknown[] };
      incidents?: { items?: { steps?: unknown[] }[] };
      approvals?: { counts?: Record<string, number>; medianMinutesToDecision?: number | null };
      auditIntegrity?: { entries?: number; verified?: boolean };
    };
    console.log(
      `packets: the packet holds ${pk.scoreHistory?.points?.length ?? 0} score points (90 days), ${pk.evidence?.items?.length ?? 0} evidence items listed (${pk.evidence?.staleCount ?? 0} of ${pk.evidence?.total ?? 0} past the staleness limit), ` +
        `${pk.pacts?.items?.length ?? 0} pacts, ${pk.incidents?.items?.length ?? 0} incident(s) (${pk.incidents?.items?.[0]?.steps?.length ?? 0} steps), approvals ${JSON.stringify(pk.approvals?.counts ?? {})} ` +
        `(median ${pk.approvals?.medianMinutesToDecision ?? 'n/a'} min to decision), audit chain ${pk.auditIntegrity?.entries ?? 0} entries ${pk.auditIntegrity?.verified ? 'verified' : 'NOT verified'}`,
    );
    console.log(
      `packets: warm-up (not counted): REST ready ${fmtInt(coldRest.readyMs)} ms, PDF ${fmtInt(coldRest.pdfMs)} ms; Slack summary + upload ${fmtInt(coldSlack.bothMs)} ms`,
    );

    const s = { ack: new Samples(), ready: new Samples(), pdf: new Samples(), pdfKb: new Samples(), slackAck: new Samples(), summary: new Samples(), file: new Samples(), both: new Samples(), uploadKb: new Samples() };
    const filesPerUpload = new Set<number>([coldSlack.files]);
    let restFailed = 0;
    let slackFailed = 0;
    for (let i = 1; i <= o.runs; i++) {
      const r = await restRun();
      ensureAlive();
      if (r) {
        s.ack.add(r.ackMs);
        s.ready.add(r.readyMs);
        s.pdf.add(r.pdfMs);
        s.pdfKb.add(r.pdfBytes / 1024);
      } else restFailed++;
      const k = await slackRun();
      ensureAlive();
      if (k) {
        s.slackAck.add(k.ackMs);
        s.summary.add(k.summaryMs);
        s.file.add(k.fileMs);
        s.both.add(k.bothMs);
        s.uploadKb.add(k.uploadBytes / 1024);
        filesPerUpload.add(k.files);
      } else slackFailed++;
      console.log(
        `packets run ${i}/${o.runs}: REST ${r ? `ready ${fmtInt(r.readyMs)} ms, PDF ${fmtInt(r.pdfMs)} ms (${fmtInt(r.pdfBytes / 1024)} KB)` : 'FAILED'}; ` +
          `Slack ${k ? `ack ${fmtMs(k.ackMs)} ms, summary ${fmtInt(k.summaryMs)} ms, upload complete ${fmtInt(k.fileMs)} ms` : 'FAILED'}`,
      );
    }

    const row = (label: string, x: Samples, failed: number, fmt = fmtInt) => {
      const [p50, max] = x.percentiles([0.5, 1]);
      return [label, String(x.count), fmt(p50!), fmt(max!), String(failed)];
    };
    console.log('');
    console.log(
      table(
        [['packets (ARMALO_ROLE=all; fake Slack)', 'count', 'p50', 'max', 'failed']],
        [
          row('REST  POST /v1/trust-packets ack, ms', s.ack, restFailed, fmtMs),
          row('REST  POST → GET shows ready, ms', s.ready, restFailed),
          row('REST  GET ?format=pdf, ms', s.pdf, restFailed),
          row('REST  PDF size, KB', s.pdfKb, restFailed),
          row('Slack /armalo packet ack, ms', s.slackAck, slackFailed, fmtMs),
          row('Slack command → summary posted, ms', s.summary, slackFailed),
          row('Slack command → upload complete, ms', s.file, slackFailed),
          row('Slack command → both (packet posted), ms', s.both, slackFailed),
          row(`Slack upload, ${[...filesPerUpload].join('/')} file(s) incl. the PDF, KB`, s.uploadKb, slackFailed),
        ],
      ),
    );
    const counts = await fetch(`${fakeUrl}${FAKE_SLACK_COUNTS_PATH}`, { signal: AbortSignal.timeout(5000) })
      .then((r) => r.json() as Promise<Record<string, number>>)
      .catch(() => ({}) as Record<string, number>);
    console.log(
      `(${o.runs} run(s) per path after one warm-up each, one packet at a time; ready = POST sent → the first GET (polled every ${POLL_MS} ms) that shows "ready"; ` +
        `Slack times are from the command sent to the fake accepting chat.postMessage (summary) and files.completeUploadExternal (upload, after every file's ` +
        `getUploadURLExternal and POST), on this machine's clock; upload KB are the multipart bodies; ` +
        `with fewer than 3 runs p50 and max are close to single samples)`,
    );
    console.log(`fake Slack Web API calls: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`);
    const [bothP50] = s.both.percentiles([0.5]);
    const ok = slackFailed === 0 && restFailed === 0 && bothP50! < GOAL_P50_MS;
    console.log(`goal "packet posted within a few seconds (goal: p50 < ${GOAL_P50_MS / 1000} s)": ${ok ? 'PASS' : 'MISS'} (p50 ${fmtInt(bothP50!)} ms${slackFailed || restFailed ? `; ${slackFailed + restFailed} failed run(s)` : ''})`);
    if (problems.length) throw new Error(`packets: wrong answers, so the numbers above describe a broken server:\n  ${problems.join('\n  ')}`);
  } finally {
    for (const p of pools) p.close();
    // The app before the fake Slack, so its worker does not lose its Slack API mid-job.
    for (const child of [...children].reverse()) await child.stop();
  }
}
