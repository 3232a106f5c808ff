/**
 * An instance started the way `npm start` and the container start it: plain `node` on JavaScript
 * built from src/ (no tsx loader in the process), configured by its environment, ready when
 * `/readyz` answers 200. Used by the scale bench to time a restart and read RSS as a deployment
 * would see them (under tsx, the loader thread alone adds seconds of start and tens of MB).
 *
 * The build is esbuild's transpile of every file (no bundling, the same layout as `tsc`'s dist/),
 * into node_modules/.cache, where packages resolve as they do from dist/. It takes a second or two;
 * `npm run build` (tsc) gives the same JavaScript, type-checked, in about a minute here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { build } from 'esbuild';
import { COMPILED_DIR, ROOT } from './children.js';

/** The bench's own child scripts that run compiled too (see `startChild`'s `compiled`), and what they import. */
const COMPILED_BENCH_FILES = ['bench/servers/app-server.ts', 'bench/lib/ipc.ts'];

/**
 * Transpiles src/, jobs/ and migrations/ (and the app-server child) into COMPILED_DIR, with
 * source maps as `npm run build` writes them; returns the path of main.js.
 */
export async function buildCompiled(): Promise<string> {
  rmSync(COMPILED_DIR, { recursive: true, force: true });
  const entryPoints = ['src', 'jobs', 'migrations'].flatMap((dir) =>
    (readdirSync(path.join(ROOT, dir), { recursive: true }) as string[]).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).map((f) => path.join(ROOT, dir, f)),
  );
  entryPoints.push(...COMPILED_BENCH_FILES.map((f) => path.join(ROOT, f)));
  await build({ entryPoints, outdir: COMPILED_DIR, outbase: ROOT, format: 'esm', platform: 'node', target: 'node20', bundle: false, sourcemap: true, logLevel: 'warning' });
  mkdirSync(COMPILED_DIR, { recursive: true });
  writeFileSync(path.join(COMPILED_DIR, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  return path.join(COMPILED_DIR, 'src', 'main.js');
}

export interface CompiledInstance {
  readonly pid: number;
  readonly port: number;
  /** Wall time from spawn to the first `/readyz` 200, ms. */
  readonly readyMs: number;
  /** CPU time (user + system) the process had used when it first answered ready, ms. */
  readonly cpuAtReadyMs: number;
  /** Resident set size now, bytes. */
  rss(): number;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** CPU time of a process from /proc (clock ticks of 10 ms on Linux). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

/** Starts `node <flags> main.js` with `env` (PORT chosen here) and waits for `/readyz` 200. */
export async function startCompiled(name: string, main: string, env: Record<string, string>, nodeFlags: string[], timeoutMs = 180_000): Promise<CompiledInstance> {
  const port = await freePort();
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, [...nodeFlags, main], { cwd: ROOT, env: { ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (const stream of [child.stdout, child.stderr]) stream?.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d.toString()}`));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const late = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(late);
  };
  try {
    for (;;) {
      const status = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) break;
      if (child.exitCode !== null) throw new Error(`${name} exited with code ${child.exitCode} before it was ready`);
      if (performance.now() - started > timeoutMs) throw new Error(`${name} was not ready within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const readyMs = performance.now() - started;
    const pid = child.pid!;
    return { pid, port, readyMs, cpuAtReadyMs: cpuMs(pid), rss: () => rssOf(pid), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
