import autocannon from 'autocannon';
import { startChild } from './lib/children.js';
const BODY = '{"decision":"allow","reasons":["allowed by grant crm:read"],"reasonCodes":["granted"],"agentStatus":"active","grantId":"975e864b-ac78-4acb-8028-2798ea7cfe70","viewVersion":"4"}';
const modes = (process.env.MODES ?? 'bare,four,fourstr').split(',');
const kids = await Promise.all(modes.map((m) => startChild(m, new URL('./servers/.variant.tmp.ts', import.meta.url).pathname, { BODY, MODE: m })));
const res: Record<string, number[]> = {};
for (let round = 0; round < 3; round++) for (const [i, k] of kids.entries()) {
  const before = await k.cpuUsage();
  const r = await new Promise<autocannon.Result>((ok, no) => autocannon({ url: `http://127.0.0.1:${k.port}/x`, method: 'POST', body: '{"agentId":"bench-decisions-bot","action":"crm:read"}', headers: { 'content-type': 'application/json', authorization: 'Bearer abcdefabcdefabcdefabcdef' }, connections: 32, duration: 4 }, (e, r) => (e ? no(e) : ok(r))));
  const after = await k.cpuUsage();
  const n = r.requests.total;
  (res[modes[i]!] ??= []).push(Math.round((after.user - before.user + after.system - before.system) / n * 10) / 10, Math.round(r.requests.average));
}
console.log(JSON.stringify(res));
await Promise.all(kids.map((k) => k.stop()));
process.exit(0);
