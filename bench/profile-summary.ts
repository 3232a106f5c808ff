/**
 * Summarises a V8 .cpuprofile (from `BENCH_CPU_PROF=1 npm run bench`, or any `node --cpu-prof`):
 * where the sampled time went by area (our src/, each npm package, node internals, GC, idle) and
 * the top functions by self and by inclusive time.
 *
 *   npx tsx bench/profile-summary.ts bench/.profiles/<file>.cpuprofile [top=25]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMPILED_DIR } from './lib/children.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const COMPILED_PREFIX = COMPILED_DIR + path.sep;

function area(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native/builtin)';
  if (url.startsWith('node:')) return 'node internals';
  const file = url.startsWith('file://') ? fileURLToPath(url) : url;
  // Our own code as the compiled instances run it (bench/lib/compiled-instance.ts): named by its source path.
  if (file.startsWith(COMPILED_PREFIX)) return path.relative(COMPILED_DIR, file).replace(/\.js$/, '.ts');
  const nm = file.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = file.slice(nm + 'node_modules/'.length).split('/');
    return `npm ${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  return path.relative(ROOT, file);
}

function label(frame: CallFrame): string {
  const where = frame.url ? `${area(frame)}:${frame.lineNumber + 1}` : '';
  return `${frame.functionName || '(anonymous)'} ${where}`.trim();
}

const file = process.argv[2];
if (!file) {
  console.error('usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]');
  process.exit(2);
}
const top = Number(process.argv[3] ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const selfByArea = new Map<string, number>();
const selfByFn = new Map<string, number>();
const inclusiveByFn = new Map<string, number>();
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = (profile.timeDeltas[i] ?? 0) / 1000; // ms
  total += dt;
  const node = byId.get(profile.samples[i]!);
  if (!node) continue;
  const a = area(node.callFrame);
  selfByArea.set(a, (selfByArea.get(a) ?? 0) + dt);
  const l = label(node.callFrame);
  selfByFn.set(l, (selfByFn.get(l) ?? 0) + dt);
  const seen = new Set<string>();
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const key = label(byId.get(id)!.callFrame);
    if (seen.has(key)) continue;
    seen.add(key);
    inclusiveByFn.set(key, (inclusiveByFn.get(key) ?? 0) + dt);
  }
}

const idle = selfByArea.get('(idle)') ?? 0;
const busy = total - idle;
const pct = (ms: number, of: number) => `${((100 * ms) / of).toFixed(1).padStart(5)}%`;
const print = (title: string, entries: Map<string, number>, of: number, skip: (k: string) => boolean = () => false) => {
  console.log(`\n${title}`);
  for (const [k, ms] of [...entries].filter(([k]) => !skip(k)).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(ms, of)}  ${ms.toFixed(0).padStart(7)} ms  ${k}`);
  }
};
console.log(`${path.basename(file)}: ${(total / 1000).toFixed(1)} s sampled, ${(busy / 1000).toFixed(1)} s busy (${pct(busy, total).trim()}), ${(idle / 1000).toFixed(1)} s idle`);
console.log('percentages below are of busy time');
print('self time by area', selfByArea, busy, (k) => k === '(idle)');
print('self time by function', selfByFn, busy, (k) => k.startsWith('(idle)'));
print('inclusive time by function', inclusiveByFn, busy, (k) => k.startsWith('(root)') || k.startsWith('(idle)'));

// Long tasks: runs of consecutive busy samples (no idle sample between them) of at least
// LONG_TASK_MS. At a fixed rate each request is a short task, so these runs are what holds a burst
// of requests up (p99). Runs longer than SATURATED_MS are the max-load runs, when the loop is never
// idle, and are left out. Each run is named by the frames of ours or of a package that took most of
// it (inclusive), so a timer's poll, a job or a GC shows up by name.
const LONG_TASK_MS = Number(process.env.LONG_TASK_MS ?? 3);
const SATURATED_MS = 200;
const GENERIC = /^(processTicksAndRejections|runMicrotasks|listOnTimeout|processTimers|emit|\(anonymous\)) /;
const isOurs = (frame: CallFrame) => {
  const a = area(frame);
  return a === '(garbage collector)' || a.startsWith('npm ') || a.startsWith('src/') || a.startsWith('jobs/');
};
const tasks = new Map<string, { count: number; total: number; max: number }>();
let runMs = 0;
let runFrames = new Map<string, number>();
const closeRun = () => {
  if (runMs >= LONG_TASK_MS && runMs < SATURATED_MS) {
    const named = [...runFrames].filter(([k]) => !GENERIC.test(k)).sort((a, b) => b[1] - a[1]).slice(0, 2).map(([k]) => k);
    const key = named.join('  <  ') || '(node internals only)';
    const t = tasks.get(key) ?? { count: 0, total: 0, max: 0 };
    t.count++;
    t.total += runMs;
    t.max = Math.max(t.max, runMs);
    tasks.set(key, t);
  }
  runMs = 0;
  runFrames = new Map();
};
for (let i = 0; i < profile.samples.length; i++) {
  const node = byId.get(profile.samples[i]!);
  const dt = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
  if (!node || node.callFrame.functionName === '(idle)') {
    closeRun();
    continue;
  }
  runMs += dt;
  const seen = new Set<string>();
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const frame = byId.get(id)!.callFrame;
    if (!isOurs(frame)) continue;
    const key = label(frame);
    if (seen.has(key)) continue;
    seen.add(key);
    runFrames.set(key, (runFrames.get(key) ?? 0) + dt);
  }
}
closeRun();
console.log(`\nlong tasks (busy runs of ${LONG_TASK_MS}-${SATURATED_MS} ms), by the two frames of ours or a package that took most of them`);
for (const [k, t] of [...tasks].sort((a, b) => b[1].total - a[1].total).slice(0, top)) {
  console.log(`${String(t.count).padStart(5)} x  max ${t.max.toFixed(1).padStart(6)} ms  total ${t.total.toFixed(0).padStart(6)} ms  ${k}`);
}
