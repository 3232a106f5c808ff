import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { isChildMessage, type ParentMessage } from './ipc.js';

/** The repository root: children run from here so `--import tsx` resolves from its node_modules. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where `buildCompiled` (compiled-instance.ts) writes the app's JavaScript. */
export const COMPILED_DIR = path.join(ROOT, 'node_modules', '.cache', 'armalo-scale-bench');

/** Where `buildCompiled` put the JavaScript of a file of ours (`bench/servers/app-server.ts` → …/bench/servers/app-server.js). */
export function compiledPathOf(file: string): string {
  const relative = path.relative(ROOT, file);
  if (relative.startsWith('..') || !relative.endsWith('.ts')) throw new Error(`not a TypeScript file of this project: ${file}`);
  return path.join(COMPILED_DIR, relative.replace(/\.ts$/, '.js'));
}

export interface ServerChild {
  readonly name: string;
  readonly port: number;
  readonly pid: number | undefined;
  /** CPU time (microseconds) the child has used since it started. */
  cpuUsage(): Promise<CpuUsage>;
  /** True once the child has exited, asked to or not. */
  exited(): boolean;
  /** Asks the child to stop; kills it (SIGKILL, by its own handle) if it has not exited in time. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface CpuUsage {
  user: number;
  system: number;
  /** Resident set size and V8 heap in use at the time of the query, bytes. */
  rss: number;
  heapUsed: number;
  /** V8 heap reserved (in use or not), bytes. */
  heapTotal: number;
}

export interface StartChildOptions {
  /** Extra node flags (e.g. --cpu-prof). */
  execArgv?: string[];
  startTimeoutMs?: number;
  /**
   * Runs the JavaScript `buildCompiled` made of `script` (call it first) with plain `node
   * --enable-source-maps`, as `npm start` and the image run the app, instead of under tsx (whose
   * loader thread and per-module state add about 35 MB of RSS to a process).
   */
  compiled?: boolean;
}

/**
 * Forks `script` (under tsx, or compiled) in its own process (its own event loop and core),
 * forwards its output to our stderr prefixed with its name, sends it `options` and waits for the
 * port it listens on.
 */
export async function startChild(name: string, script: string, options: Record<string, string>, opts: StartChildOptions = {}): Promise<ServerChild> {
  const child: ChildProcess = fork(opts.compiled ? compiledPathOf(script) : script, [], {
    cwd: ROOT,
    execArgv: [...(opts.compiled ? ['--enable-source-maps'] : ['--import', 'tsx']), ...(opts.execArgv ?? [])],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let hasExited = false;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      hasExited = true;
      if (code !== 0 && code !== null) console.error(`[${name}] exited with code ${code}`);
      if (signal) console.error(`[${name}] killed by ${signal}`);
      resolve();
    });
  });
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) createInterface({ input: stream }).on('line', (line) => console.error(`[${name}] ${line}`));
  }

  const stop = async (timeoutMs = 10_000) => {
    if (hasExited) return;
    if (child.connected) child.send({ type: 'stop' } satisfies ParentMessage);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    });
    const late = await Promise.race([exitedPromise.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late && !hasExited) {
      console.error(`[${name}] did not stop within ${timeoutMs} ms; killing pid ${child.pid}`);
      child.kill('SIGKILL');
      await exitedPromise;
    }
  };

  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not report its port within ${opts.startTimeoutMs ?? 30_000} ms`)), opts.startTimeoutMs ?? 30_000);
      child.on('message', (msg: unknown) => {
        if (!isChildMessage(msg) || msg.type === 'usage') return;
        clearTimeout(timer);
        if (msg.type === 'ready') resolve(msg.port);
        else reject(new Error(`${name} failed to start: ${msg.message}`));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (code ${code}) before reporting its port`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.send({ type: 'start', options } satisfies ParentMessage);
    });
    const cpuUsage = () =>
      new Promise<CpuUsage>((resolve, reject) => {
        const timer = setTimeout(() => {
          child.off('message', onMessage);
          reject(new Error(`${name} did not report its CPU usage`));
        }, 5000);
        const onMessage = (msg: unknown) => {
          if (!isChildMessage(msg) || msg.type !== 'usage') return;
          clearTimeout(timer);
          child.off('message', onMessage);
          resolve({ user: msg.user, system: msg.system, rss: msg.rss, heapUsed: msg.heapUsed, heapTotal: msg.heapTotal });
        };
        child.on('message', onMessage);
        child.send({ type: 'usage' } satisfies ParentMessage);
      });
    return { name, port, pid: child.pid, cpuUsage, exited: () => hasExited, stop };
  } catch (err) {
    await stop(3000);
    throw err;
  }
}

/**
 * The children one benchmark part starts: each is registered for cleanup (`track`) as it starts,
 * and `ensureAlive` fails the part loudly if any of them has died.
 */
export function childGroup(track: (child: ServerChild) => void, part: string) {
  const children: ServerChild[] = [];
  return {
    children,
    async start(name: string, script: string, env: Record<string, string>): Promise<ServerChild> {
      const child = await startChild(name, script, env);
      track(child);
      children.push(child);
      return child;
    },
    ensureAlive(): void {
      const dead = children.find((c) => c.exited());
      if (dead) throw new Error(`${dead.name} exited during the ${part} benchmark`);
    },
  };
}

/** The environment every benchmark starts our app with; parts add their own settings on top. */
export function appEnv(o: { databaseUrl: string; redisUrl: string; host: string; queuePrefix: string; apiToken: string }, role: 'web' | 'all', extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'production',
    ARMALO_ROLE: role,
    DATABASE_URL: o.databaseUrl,
    REDIS_URL: o.redisUrl,
    HOST: o.host,
    PORT: '0',
    LOG_LEVEL: 'warn',
    ARMALO_QUEUE_PREFIX: o.queuePrefix,
    ARMALO_API_TOKENS: `bench:${o.apiToken}`,
    ...extra,
  };
}
