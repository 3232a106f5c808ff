/**
 * Summarises a sampling heap profile (bench/servers/app-server.ts with BENCH_HEAP_SAMPLE): bytes
 * allocated by area and by function (self), to find what a request allocates.
 *
 *   npx tsx bench/heap-summary.ts <file.heapprofile> [top=30]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface Node {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: Node[];
}
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const area = (url: string, fn: string) => {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const file = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = file.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = file.slice(nm + 13).split('/');
    return `npm ${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  return path.relative(ROOT, file);
};
const file = process.argv[2];
if (!file) throw new Error('usage: tsx bench/heap-summary.ts <file.heapprofile> [top]');
const top = Number(process.argv[3] ?? 30);
const { head } = JSON.parse(readFileSync(file, 'utf8')) as { head: Node };
const byArea = new Map<string, number>();
const byFn = new Map<string, number>();
/** Self bytes, attributed to the nearest frame of ours (src/, jobs/) on the stack, if any. */
const byOurs = new Map<string, number>();
let total = 0;
const walk = (n: Node, ours: string | undefined) => {
  const a = area(n.callFrame.url, n.callFrame.functionName);
  const label = `${n.callFrame.functionName || '(anonymous)'} ${a}:${n.callFrame.lineNumber + 1}`;
  const mine = a.startsWith('src/') || a.startsWith('jobs/') ? label : ours;
  total += n.selfSize;
  byArea.set(a, (byArea.get(a) ?? 0) + n.selfSize);
  byFn.set(label, (byFn.get(label) ?? 0) + n.selfSize);
  byOurs.set(mine ?? '(no frame of ours)', (byOurs.get(mine ?? '(no frame of ours)') ?? 0) + n.selfSize);
  for (const c of n.children) walk(c, mine);
};
walk(head, undefined);
const print = (title: string, m: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((x, y) => y[1] - x[1]).slice(0, top)) console.log(`${((100 * v) / total).toFixed(1).padStart(5)}%  ${(v / 1e6).toFixed(1).padStart(8)} MB  ${k}`);
};
console.log(`${path.basename(file)}: ${(total / 1e6).toFixed(1)} MB sampled`);
print('allocated by area', byArea);
print('allocated by function (self)', byFn);
print('allocated under our nearest frame', byOurs);
