/**
 * The permission view's approvals poll: `npx tsx bench/view-poll.ts` (Postgres as for the tests;
 * VIEW_POLL_BENCH_OPEN=1000,10000,50000 for the numbers of open approval requests, VIEW_POLL_BENCH_RUNS
 * for the reads per measurement, default 20).
 *
 * Every replica's view polls each `ARMALO_VIEW_STALE_AFTER_MS / 3` (1 s by default). Until 4 December
 * 2026 each poll read every open approval request (`loadOpenApprovals` without agents) on the event
 * loop that answers decisions; now it asks which agents' requests were written since the last poll
 * (`approvalsWrittenSince`) and reads only theirs. Both reads run here, in this process, against the
 * same database with the same rows, so the first column is the baseline measured in the same run:
 * the time of one read, and the CPU this process spent on it (parsing rows is CPU on the event loop).
 * The agents have 5 open requests each, plus 4 closed ones each (history the table keeps).
 */
import { cpus, loadavg } from 'node:os';
import { sql } from 'kysely';
import { approvalsWrittenSince, loadOpenApprovals } from '../src/approvals/open-approvals.repository.js';
import { createDb } from '../src/db/database.js';
import { createTestDatabase } from '../test/support/database.js';
import { seedFleet } from '../test/support/fleet.js';
import { fmtMs, median, table } from './lib/stats.js';

const SIZES = (process.env.VIEW_POLL_BENCH_OPEN ?? '1000,10000,50000').split(',').map((s) => Number(s.trim()));
const RUNS = Math.max(3, Number(process.env.VIEW_POLL_BENCH_RUNS ?? 20));
const OPEN_PER_AGENT = 5;
const CLOSED_PER_AGENT = 4;

for (const n of SIZES) {
  if (!Number.isInteger(n) || n < OPEN_PER_AGENT || n > 500_000) {
    console.error(`VIEW_POLL_BENCH_OPEN: each size must be a whole number from ${OPEN_PER_AGENT} to 500000 (got ${n})`);
    process.exit(2);
  }
}

interface Measured {
  ms: number;
  cpuMs: number;
}

/** Median wall time and process CPU of `runs` calls of `fn`, after two warm-ups. */
async function measure(runs: number, fn: () => Promise<unknown>): Promise<Measured> {
  for (let i = 0; i < 2; i++) await fn();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { ms: median(wall), cpuMs: median(cpu) };
}

async function main(): Promise<void> {
  console.log('the views\' approvals poll: every open request (before) vs the requests written since the last poll (now)');
  console.log(`node ${process.version}, ${cpus().length} CPU(s), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${RUNS} reads per cell (medians)`);
  const rows: string[][] = [];
  for (const open of SIZES) {
    const database = await createTestDatabase();
    const db = createDb(database.url, { max: 4 });
    try {
      const agents = Math.ceil(open / OPEN_PER_AGENT);
      await seedFleet(db, agents);
      await sql`
        insert into approval_requests (id, agent_id, action, context, justification, requested_by, status, route, created_at, expires_at, decided_at)
        select gen_random_uuid(), 'fleet-' || lpad((1 + (i % ${agents}::int))::text, 6, '0'), 'payments:transfer',
          jsonb_build_object('amount', 20000 + i, 'currency', 'EUR'), 'payout ' || i, 'api:bench',
          case when i < ${open}::int then 'pending' else 'denied' end,
          '{"ruleId":"large-payments","requirements":[{"roles":["risk-owner"],"count":1}],"escalateTo":[]}'::jsonb,
          now(), now() + interval '1 day', case when i < ${open}::int then null else now() end
        from generate_series(0, ${open + agents * CLOSED_PER_AGENT - 1}::int) as i`.execute(db);
      await sql`analyze approval_requests`.execute(db);

      const before = await measure(RUNS, () => loadOpenApprovals(db, new Date()));
      // Now: nothing written since the last poll (the common case)...
      let horizon = (await approvalsWrittenSince(db, undefined)).horizon;
      const idle = await measure(RUNS, async () => {
        const written = await approvalsWrittenSince(db, horizon);
        if (written.agentIds.length) await loadOpenApprovals(db, new Date(), written.agentIds);
        horizon = written.horizon;
      });
      // ...and one request written before each poll (an approval decided).
      let k = 0;
      const oneWrite = await measure(RUNS, async () => {
        const agentId = `fleet-${String(1 + (k++ % agents)).padStart(6, '0')}`;
        await sql`update approval_requests set justification = justification where id = (select id from approval_requests where agent_id = ${agentId} and status = 'pending' limit 1)`.execute(db);
        const written = await approvalsWrittenSince(db, horizon);
        if (written.agentIds.length) await loadOpenApprovals(db, new Date(), written.agentIds);
        horizon = written.horizon;
      });
      rows.push([open.toLocaleString('en-US'), fmtMs(before.ms), fmtMs(before.cpuMs), fmtMs(idle.ms), fmtMs(idle.cpuMs), fmtMs(oneWrite.ms), `${(before.ms / idle.ms).toFixed(0)}×`]);
    } finally {
      await db.destroy();
      await database.drop();
    }
  }
  console.log('');
  console.log(
    table(
      [
        ['open requests', 'before: read all', '', 'now: nothing written', '', 'now: one written', 'before / now'],
        ['', 'ms', 'CPU ms', 'ms', 'CPU ms', 'ms (with the write)', '(idle poll)'],
      ],
      rows,
    ),
  );
  console.log(`(per poll; a view polls every ARMALO_VIEW_STALE_AFTER_MS / 3, 1 s by default, on every replica)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
