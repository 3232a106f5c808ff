import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createDb, ensureDatabaseExists } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrator.js';
import { startChild, type ServerChild } from './lib/children.js';
import { INSTANCE_NODE_FLAGS, configuredInstanceEnv, writeBenchPolicy } from './lib/instance.js';
import { deleteRedisPrefix } from './lib/redis-cleanup.js';
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const TOKEN = `bench_${randomBytes(24).toString('hex')}`;
const runId = randomBytes(5).toString('hex');
const dbName = `armalo_bench_idle_${runId}`;
const databaseUrl = `postgres://postgres@127.0.0.1:5432/${dbName}`;
const prefix = `armalo-bench-idle-${runId}`;
const tempDir = mkdtempSync(path.join(tmpdir(), 'armalo-bench-idle-'));
const children: ServerChild[] = [];
try {
  await ensureDatabaseExists(databaseUrl);
  const db = createDb(databaseUrl, { max: 1 });
  await migrateToLatest(db).finally(() => db.destroy());
  const fake = await startChild('fake-slack', here('./servers/fake-slack-server.ts'), { HOST: '127.0.0.1' });
  children.push(fake);
  const env = configuredInstanceEnv({ databaseUrl, redisUrl: 'redis://127.0.0.1:6379', host: '127.0.0.1', queuePrefix: prefix, apiToken: TOKEN, policyFile: writeBenchPolicy(tempDir), fakeUrl: `http://127.0.0.1:${fake.port}` }, (process.env.ROLE ?? 'all') as 'all');
  const prof = process.env.PROF ? ['--cpu-prof', '--cpu-prof-interval', '200', '--cpu-prof-dir', process.env.PROF] : [];
  const app = await startChild('app', here('./servers/app-server.ts'), env, { execArgv: [...INSTANCE_NODE_FLAGS, ...prof] });
  children.push(app);
  const token = TOKEN;
  const url = `http://127.0.0.1:${app.port}`;
  const put = await fetch(`${url}/v1/agents/bench-bot`, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ name: 'b', owner: 'b@example.com', riskTier: 'medium', grants: [{ scope: 'crm:read' }, { scope: 'payments:transfer', constraints: { maxAmount: 10000 } }] }) });
  console.log('put', put.status);
  const autocannon = (await import('autocannon')).default;
  const go = (secs: number) => new Promise<any>((ok, no) => autocannon({ url: `${url}/v1/decisions`, method: 'POST', body: '{"agentId":"bench-bot","action":"crm:read"}', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, connections: 32, duration: secs }, (e: any, r: any) => (e ? no(e) : ok(r))));
  await go(3);
  for (let i = 0; i < 3; i++) {
    const a = await app.cpuUsage();
    const r = await go(5);
    const b = await app.cpuUsage();
    console.log(JSON.stringify({ rps: Math.round(r.requests.average), non2xx: r.non2xx, cpuPerReq: Math.round((b.user - a.user) / r.requests.total) + '+' + Math.round((b.system - a.system) / r.requests.total) }));
  }
} finally {
  await Promise.all(children.map((c) => c.stop()));
  const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' });
  await admin.connect();
  await admin.query(`drop database if exists "${dbName}" with (force)`).finally(() => admin.end());
  await deleteRedisPrefix('redis://127.0.0.1:6379', prefix).catch(() => undefined);
  rmSync(tempDir, { recursive: true, force: true });
}
process.exit(0);
